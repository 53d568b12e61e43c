package testdb

import (
	"testing"
	"testing/fstest"

	"github.com/riverqueue/river/rivermigrate"
)

// A River upgrade that adds or changes a migration must not reuse a
// template migrated by the older River.
func TestFingerprint_ChangesWithRiversMigrations(t *testing.T) {
	files := fstest.MapFS{"00001_schema.sql": {Data: []byte("CREATE TABLE t ()")}}
	v6 := []rivermigrate.Migration{{Version: 6, SQLUp: "CREATE TABLE river_job ()"}}
	base, err := fingerprintOf(files, v6)
	if err != nil {
		t.Fatal(err)
	}
	for name, river := range map[string][]rivermigrate.Migration{
		"a new River migration":     append(v6[:1:1], rivermigrate.Migration{Version: 7, SQLUp: "ALTER TABLE river_job ADD x int"}),
		"a changed River migration": {{Version: 6, SQLUp: "CREATE TABLE river_job (id bigint)"}},
	} {
		if fp, _ := fingerprintOf(files, river); fp == base {
			t.Errorf("%s leaves the fingerprint %s unchanged", name, fp)
		}
	}
	if fp, _ := fingerprintOf(files, v6); fp != base {
		t.Errorf("the same migrations fingerprint differently: %s, %s", fp, base)
	}
	if fp, err := fingerprint(); err != nil || fp == "" {
		t.Fatalf("fingerprint of the real migrations: %q, %v", fp, err)
	}
}
