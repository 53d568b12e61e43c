package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/config"
	"github.com/hookrelay/hookrelay/internal/dbpool"
	"github.com/hookrelay/hookrelay/internal/redisurl"
	"github.com/hookrelay/hookrelay/migrations"
)

// deps are what every command connects to.
type deps struct {
	cfg  config.Config
	log  *slog.Logger
	pool *pgxpool.Pool
	rdb  redis.UniversalClient // one node, a Sentinel-managed master or a Cluster: REDIS_URL's scheme says
}

// connect loads the configuration and opens Postgres and (if needRedis) Redis.
func connect(ctx context.Context, needRedis bool) (*deps, error) {
	cfg, err := config.Load(ctx)
	if err != nil {
		return nil, err
	}
	d := &deps{cfg: cfg, log: newLogger(cfg.LogLevel)}
	if d.pool, err = dbpool.Open(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	if needRedis {
		redis.SetLogger(redisLog{d.log})
		// The configuration has checked the URL already.
		if d.rdb, err = redisurl.NewClient(cfg.RedisURL); err != nil {
			d.close()
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
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

// redisLog routes go-redis's own log lines (a dial that failed, a pool
// connection dropped) to the process's structured log at debug level: the
// loops that meet the same failures report them once per outage (package
// outage), so at the default level an outage is one line, not one a retry.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
