package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/migrations"
	"github.com/hookrelay/hookrelay/signature"
)

// benchSchemaSQL holds the bench's own tables: the business row of the
// "deploy a config" transaction, the same table with a hookrelay trigger,
// the plain event table (the floor of any outbox) and the River baseline's
// attempt rows.
const benchSchemaSQL = `
CREATE SCHEMA bench;
CREATE TABLE bench.deploys (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id     uuid NOT NULL,
    application_id uuid NOT NULL,
    environment    text NOT NULL,
    config_id      uuid NOT NULL,
    deployed_by    text NOT NULL,
    deployed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench.deploys_emitting (LIKE bench.deploys INCLUDING ALL);
CREATE TRIGGER deploys_emitting_event
    AFTER INSERT ON bench.deploys_emitting
    FOR EACH ROW EXECUTE FUNCTION hookrelay.emit_row_change('config.deployed', 'project_id');
CREATE TABLE bench.events (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_type text NOT NULL,
    project_id uuid NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench.river_attempts (
    delivery_id   uuid NOT NULL,
    attempt       integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   double precision NOT NULL,
    status_code   integer,
    error         text,
    response_body text,
    PRIMARY KEY (delivery_id, attempt)
);`

// resetSQL empties every table a scenario writes, so each starts alike.
const resetSQL = `TRUNCATE hookrelay.outbox, hookrelay.deliveries, hookrelay.delivery_attempts,
hookrelay.webhooks, hookrelay.webhook_health, hookrelay.river_job, bench.deploys, bench.deploys_emitting, bench.events,
bench.river_attempts;
SELECT setval('hookrelay.relay_idle', 1)`

// setup creates the bench database from scratch, migrates it and connects to
// it and to Redis. The returned cleanup drops the database (unless Keep) and
// deletes the run's Redis keys.
func (e *env) setup(ctx context.Context) (func(), error) {
	admin, err := pgx.Connect(ctx, e.cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("bench: connect to Postgres: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	name := pgx.Identifier{e.cfg.Database}.Sanitize()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return nil, fmt.Errorf("bench: drop database %s: %w", e.cfg.Database, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("bench: create database %s: %w", e.cfg.Database, err)
	}
	if e.dbURL, err = withDatabase(e.cfg.DatabaseURL, e.cfg.Database); err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(e.cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("bench: REDIS_URL: %w", err)
	}
	opt.PoolSize = max(opt.PoolSize, 2*e.cfg.Sizes.Concurrency)
	e.rdb = redis.NewClient(opt)

	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		e.dropKeys(cctx)
		if e.pool != nil {
			e.pool.Close()
		}
		e.rdb.Close()
		if e.cfg.Keep {
			return
		}
		if c, err := pgx.Connect(cctx, e.cfg.DatabaseURL); err == nil {
			if _, err := c.Exec(cctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				e.log.Warn("bench: could not drop the bench database", "database", e.cfg.Database, "err", err)
			}
			c.Close(cctx)
		}
	}
	fail := func(err error) (func(), error) {
		cleanup()
		return nil, err
	}
	if err := e.rdb.Ping(ctx).Err(); err != nil {
		return fail(fmt.Errorf("bench: connect to Redis: %w", err))
	}
	if e.pool, err = e.newPool(ctx, 8); err != nil {
		return fail(err)
	}
	if _, err := migrations.Apply(ctx, e.pool); err != nil {
		return fail(fmt.Errorf("bench: %w", err))
	}
	if _, err := e.pool.Exec(ctx, benchSchemaSQL); err != nil {
		return fail(fmt.Errorf("bench: create bench tables: %w", err))
	}
	return cleanup, nil
}

// newPool opens a pool of at most size connections on the bench database,
// as a separate hookrelay process would have.
func (e *env) newPool(ctx context.Context, size int) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(e.dbURL)
	if err != nil {
		return nil, fmt.Errorf("bench: parse database URL: %w", err)
	}
	pc.MaxConns = int32(size)
	pc.ConnConfig.RuntimeParams["application_name"] = "bench"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("bench: open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("bench: connect to the bench database: %w", err)
	}
	return pool, nil
}

// reset empties the bench database's tables and checkpoints, so that every
// scenario starts from the same state.
func (e *env) reset(ctx context.Context) error {
	if _, err := e.pool.Exec(ctx, resetSQL); err != nil {
		return fmt.Errorf("bench: reset tables: %w", err)
	}
	// CHECKPOINT needs privileges the bench may not have; it only evens out
	// the starting conditions, so its failure is not fatal.
	if _, err := e.pool.Exec(ctx, "CHECKPOINT"); err != nil {
		e.log.Debug("bench: CHECKPOINT refused", "err", err)
	}
	return nil
}

// dropKeys deletes every Redis key of this run.
func (e *env) dropKeys(ctx context.Context) {
	iter := e.rdb.Scan(ctx, 0, e.prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		if err := e.rdb.Del(ctx, keys...).Err(); err != nil {
			e.log.Warn("bench: could not delete the run's Redis keys", "prefix", e.prefix, "err", err)
		}
	}
}

// hook is a webhook the bench created.
type hook struct {
	ID, Project uuid.UUID
	Secret      string
}

// webhook creates an active webhook of a new project that receives every
// event type at url.
func (e *env) webhook(ctx context.Context, url string) (hook, error) {
	return e.webhookIn(ctx, uuid.New(), url)
}

// webhookIn creates an active webhook of project that receives every event
// type at url; two of one project receive the same events.
func (e *env) webhookIn(ctx context.Context, project uuid.UUID, url string) (hook, error) {
	h := hook{Project: project}
	var err error
	if h.Secret, err = signature.NewSecret(); err != nil {
		return hook{}, err
	}
	err = e.pool.QueryRow(ctx, `INSERT INTO hookrelay.webhooks (project_id, name, url, secret, event_types)
VALUES ($1, 'bench', $2, $3, '{*}') RETURNING id`, h.Project, url, h.Secret).Scan(&h.ID)
	if err != nil {
		return hook{}, fmt.Errorf("bench: create webhook: %w", err)
	}
	return h, nil
}

// withDatabase points a connection string (URL or key=value form) at the
// database name.
func withDatabase(raw, name string) (string, error) {
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		return raw + " dbname=" + name, nil // key=value form: the last setting wins
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bench: DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
