// Package testdb gives each test its own migrated Postgres database, so tests
// run in parallel against the real server without stepping on each other.
//
// The first caller in a test run migrates a template database (named after a
// fingerprint of hookrelay's and River's migrations, so a changed migration
// or a River upgrade makes a new one);
// each test then gets a copy of it (CREATE DATABASE ... TEMPLATE), dropped
// when the test ends.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/hookrelay/hookrelay/internal/config"
	"github.com/hookrelay/hookrelay/internal/dberr"
	"github.com/hookrelay/hookrelay/migrations"
)

// DB is a test's private database.
type DB struct {
	Pool *pgxpool.Pool
	URL  string // connection string of the private database
	Name string

	admin string
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// New creates a private, migrated database for t and drops it when t ends.
// It fails the test, naming Postgres, when the server cannot be reached.
func New(t testing.TB) *DB {
	t.Helper()
	db, err := Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Drop(); err != nil {
			t.Log(err)
		}
	})
	return db
}

// Create makes a private, migrated database; the caller must Drop it. It is
// for TestMain and examples, which have no testing.TB.
func Create(ctx context.Context) (*DB, error) {
	c, err := config.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("testdb: %w", err)
	}
	admin := c.DatabaseURL
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx, admin) })
	if templateErr != nil {
		return nil, fmt.Errorf("testdb: Postgres is required (DATABASE_URL=%s): %w", redact(admin), templateErr)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("testdb: Postgres is required (DATABASE_URL=%s): %w", redact(admin), err)
	}
	defer conn.Close(ctx)
	name := "hookrelay_test_" + randomHex(6)
	// A concurrent CREATE DATABASE from the same template can collide briefly;
	// retry. A test run of another checkout, with other migrations, may
	// have dropped the template as stale: make it again.
	tpl := templateName
	for i := 0; ; i++ {
		_, err = conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tpl))
		if err == nil || i == 50 {
			break
		}
		if dberr.Is(err, "3D000") { // invalid_catalog_name: the template is gone
			if tpl, err = ensureTemplate(ctx, admin); err != nil {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("testdb: create database %s: %w", name, err)
	}
	dbURL := withDatabase(admin, name)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("testdb: open %s: %w", name, err)
	}
	return &DB{Pool: pool, URL: dbURL, Name: name, admin: admin}, nil
}

// Drop closes the pool and drops the database, closing other sessions on it.
func (db *DB) Drop() error {
	db.Pool.Close()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db.admin)
	if err != nil {
		return fmt.Errorf("testdb: drop %s: %w", db.Name, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+db.Name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("testdb: drop %s: %w", db.Name, err)
	}
	return nil
}

// ensureTemplate creates the migrated template database once per fingerprint,
// serialised across test binaries by an advisory lock.
func ensureTemplate(ctx context.Context, admin string) (string, error) {
	fp, err := fingerprint()
	if err != nil {
		return "", err
	}
	name := "hookrelay_tpl_" + fp
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(7426891)"); err != nil {
		return "", err
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock(7426891)") //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	tmp := name + "_tmp"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+tmp+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+tmp); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, withDatabase(admin, tmp))
	if err != nil {
		return "", err
	}
	_, err = migrations.Apply(ctx, pool)
	pool.Close()
	if err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+tmp+" RENAME TO "+name); err != nil {
		return "", err
	}
	// Templates of older migrations are of no further use.
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'hookrelay\_tpl\_%' AND datname <> $1`, name)
	if err != nil {
		return "", err
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	for _, db := range stale {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize())
	}
	return name, nil
}

// fingerprint identifies the schema a template holds: hookrelay's migration
// files and River's migrations (each version's SQL), so that a changed
// migration of either, or a River upgrade, makes a new template instead of
// reusing a stale one.
func fingerprint() (string, error) {
	river, err := rivermigrate.New(riverpgxv5.New(nil), &rivermigrate.Config{Schema: migrations.Schema})
	if err != nil {
		return "", fmt.Errorf("river migrations: %w", err)
	}
	return fingerprintOf(migrations.Files(), river.AllVersions())
}

func fingerprintOf(files fs.FS, river []rivermigrate.Migration) (string, error) {
	h := sha256.New()
	for _, m := range river {
		fmt.Fprintf(h, "river %d\n%s\n", m.Version, m.SQLUp)
	}
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}

// PublishOutboxSQL moves the relay's cursor past every outbox row committed
// before the statement, as a relay that has read them would, for tests that
// need published events without running a relay. Rows written in the same
// transaction stay unpublished: run it on its own, and never beside writers
// still in flight (it clears the pending list, so their rows would count as
// published).
const PublishOutboxSQL = `UPDATE hookrelay.relay_cursor
SET xid = pg_current_xact_id(), seq = 0, pending_xids = '{}', pending_seqs = '{}'`

// FarFutureXID is an xid that no transaction of a test run reaches: an outbox
// row given it stays past the relay's cursor whatever PublishOutboxSQL does.
// Only for tests that run no relay (a relay would read it and jump there).
const FarFutureXID = "4611686018427387904"
