package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/config"
	"github.com/hookrelay/hookrelay/migrations"
)

// defaultPoolSize is the Postgres pool size when DATABASE_URL sets none.
const defaultPoolSize = 20

// deps are what every command connects to.
type deps struct {
	cfg  config.Config
	log  *slog.Logger
	pool *pgxpool.Pool
	rdb  *redis.Client
}

// connect loads the configuration and opens Postgres and (if needRedis) Redis.
func connect(ctx context.Context, needRedis bool) (*deps, error) {
	cfg, err := config.Load(ctx)
	if err != nil {
		return nil, err
	}
	d := &deps{cfg: cfg, log: newLogger(cfg.LogLevel)}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if !strings.Contains(cfg.DatabaseURL, "pool_max_conns") {
		// pgxpool's default, max(4, CPUs), starves a worker running 32
		// deliveries at once; the URL's pool_max_conns overrides this.
		pcfg.MaxConns = defaultPoolSize
	}
	if d.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	if err := d.pool.Ping(ctx); err != nil {
		d.close()
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	if needRedis {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			d.close()
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		d.rdb = redis.NewClient(opt)
		if err := d.rdb.Ping(ctx).Err(); err != nil {
			d.close()
			return nil, fmt.Errorf("connect to Redis: %w", err)
		}
	}
	return d, nil
}

func (d *deps) close() {
	if d.rdb != nil {
		d.rdb.Close()
	}
	if d.pool != nil {
		d.pool.Close()
	}
}

func runMigrate(ctx context.Context, _ []string) error {
	d, err := connect(ctx, false)
	if err != nil {
		return err
	}
	defer d.close()
	res, err := migrations.Apply(ctx, d.pool)
	if err != nil {
		return err
	}
	d.log.Info("migrated", "hookrelay_applied", len(res.Applied), "river_applied", len(res.RiverApplied))
	return nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
