// Package dbpool opens hookrelay's Postgres pool with the session settings
// its recovery paths rely on, so that nothing a stuck or vanished process
// holds is held for long:
//
//   - idle_in_transaction_session_timeout: a frozen process's open
//     transaction (a relay's claimed outbox rows, a worker's locked
//     deliveries) is ended by the server after a minute;
//   - server-side TCP keepalives and tcp_user_timeout: the server notices a
//     client that vanished without closing (a partitioned or powered-off
//     host) within about a minute, not after the kernel's two hours, and
//     rolls its transaction back;
//   - client-side TCP keepalives: a process notices a server that vanished
//     as quickly, and its pool replaces the connection.
//
// The settings are applied with SET once a connection is made, not sent in
// its startup packet, so that a server or proxy that refuses one of them
// (PgBouncer refuses unknown startup parameters; Postgres before 12 has no
// tcp_user_timeout) costs only that setting, not the connection. A setting
// given in DATABASE_URL wins over these defaults.
package dbpool

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultMaxConns is the pool size when DATABASE_URL sets none (pgxpool's
// own default, max(4, CPUs), starves a worker with 32 deliveries in flight).
const DefaultMaxConns = 20

// Keepalive timing, on both ends of each connection: the first probe after
// KeepaliveIdle of silence, then every KeepaliveInterval, KeepaliveCount
// probes in all.
const (
	KeepaliveIdle     = 30 * time.Second
	KeepaliveInterval = 10 * time.Second
	KeepaliveCount    = 3
)

// Session settings applied to every connection unless DATABASE_URL sets them.
var sessionDefaults = map[string]string{
	"idle_in_transaction_session_timeout": "60s",
	"tcp_keepalives_idle":                 fmt.Sprint(int(KeepaliveIdle / time.Second)),
	"tcp_keepalives_interval":             fmt.Sprint(int(KeepaliveInterval / time.Second)),
	"tcp_keepalives_count":                fmt.Sprint(KeepaliveCount),
	"tcp_user_timeout":                    fmt.Sprint(int((KeepaliveIdle + KeepaliveInterval*KeepaliveCount) / time.Millisecond)),
}

// Config parses url and applies hookrelay's defaults.
func Config(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	var sets []string
	for k, v := range sessionDefaults {
		if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
			sets = append(sets, "SET "+k+" = '"+v+"'")
		}
	}
	sort.Strings(sets)
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		for _, set := range sets {
			_, _ = conn.Exec(ctx, set) // best effort: see the package documentation
		}
		return nil
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: KeepaliveIdle, Interval: KeepaliveInterval, Count: KeepaliveCount,
	}}
	cfg.ConnConfig.DialFunc = d.DialContext
	return cfg, nil
}

// Open connects a pool configured by Config and checks that it answers.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := Config(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	return pool, nil
}
