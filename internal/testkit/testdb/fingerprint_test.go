package testdb

import (
	"slices"
	"testing"
	"testing/fstest"

	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/hookrelay/hookrelay/migrations"
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

// The database a test gets has every migration this River knows; one copied
// from a template that an older River migrated would not.
func TestNew_DatabaseHasEveryRiverMigration(t *testing.T) {
	db := New(t)
	m, err := rivermigrate.New(riverpgxv5.New(db.Pool), &rivermigrate.Config{Schema: migrations.Schema})
	if err != nil {
		t.Fatal(err)
	}
	existing, err := m.ExistingVersions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got, want []int
	for _, e := range existing {
		got = append(got, e.Version)
	}
	for _, a := range m.AllVersions() {
		want = append(want, a.Version)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("River migration versions in the test database %v, want %v", got, want)
	}
}
