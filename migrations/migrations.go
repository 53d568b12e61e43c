// Package migrations holds hookrelay's schema and applies it, together with
// River's tables, to a database.
//
// hookrelay's own migrations are plain SQL files run by goose; River's come
// from rivermigrate. Both live in schema "hookrelay". Apply is idempotent and
// safe to run while relays and workers are running: every step is
// transactional and concurrent callers are serialised by an advisory lock.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// Schema is the Postgres schema that holds hookrelay's and River's tables.
const Schema = "hookrelay"

// lockKey is the advisory lock that serialises concurrent Apply calls
// (an arbitrary constant: "hookrelay" as a 63-bit number).
const lockKey = 0x686f6f6b72656c

//go:embed *.sql
var files embed.FS

// Files returns the embedded SQL migrations (for tests that fingerprint them).
func Files() fs.FS { return files }

// Result says what Apply did.
type Result struct {
	Applied      []string // hookrelay migrations applied now
	RiverApplied []int    // River migration versions applied now
}

// Apply brings the database up to date: hookrelay's schema first, then River's.
func Apply(ctx context.Context, pool *pgxpool.Pool) (Result, error) {
	var res Result
	// The lock is held on a connection of its own, outside the pool, so that
	// callers waiting for it do not starve the pool the migrations run on.
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return res, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return res, fmt.Errorf("migrate: take advisory lock: %w", err)
	}

	// goose keeps its version table inside our schema, so the schema must exist first.
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+Schema); err != nil {
		return res, fmt.Errorf("migrate: create schema: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithTableName(Schema+".goose_db_version"))
	if err != nil {
		return res, fmt.Errorf("migrate: load migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate: apply hookrelay migrations: %w", err)
	}
	for _, r := range results {
		res.Applied = append(res.Applied, r.Source.Path)
	}

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: Schema})
	if err != nil {
		return res, fmt.Errorf("migrate: river migrator: %w", err)
	}
	rr, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return res, fmt.Errorf("migrate: apply river migrations: %w", err)
	}
	for _, v := range rr.Versions {
		res.RiverApplied = append(res.RiverApplied, v.Version)
	}
	return res, nil
}
