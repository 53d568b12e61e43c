// Package config is hookrelay's configuration: one struct, read from the
// environment with go-envconfig. Nothing else in hookrelay reads the
// environment.
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/hookrelay/hookrelay/internal/redisurl"
	"github.com/hookrelay/hookrelay/internal/stream"
)

// Config holds every setting of every hookrelay command. The README lists
// them all; keep the two in step.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL, default=postgres://postgres@localhost:5432/postgres?sslmode=disable"`
	// RedisURL selects the topology by its scheme: redis:// (one node),
	// redis-sentinel:// or redis-cluster:// (see package redisurl).
	RedisURL string `env:"REDIS_URL, default=redis://localhost:6379/0"`

	Stream string `env:"HOOKRELAY_STREAM, default=queues:webhooks"`
	Group  string `env:"HOOKRELAY_GROUP, default=worker-webhooks"`
	// StreamShards spreads deliveries over that many stream keys, by
	// webhook (see stream.Shards); 1 is the one key HOOKRELAY_STREAM.
	StreamShards int `env:"HOOKRELAY_STREAM_SHARDS, default=1"`

	// Delivery.
	RetrySchedule        []time.Duration `env:"HOOKRELAY_RETRY_SCHEDULE, default=1m,5m,15m,1h,4h"`
	MaxAttempts          int             `env:"HOOKRELAY_MAX_ATTEMPTS, default=6"`
	Timeout              time.Duration   `env:"HOOKRELAY_TIMEOUT, default=10s"`
	RetryAfterMax        time.Duration   `env:"HOOKRELAY_RETRY_AFTER_MAX, default=1h"`
	AllowPrivateNetworks bool            `env:"HOOKRELAY_ALLOW_PRIVATE_NETWORKS, default=false"`
	HeaderPrefix         string          `env:"HOOKRELAY_HEADER_PREFIX, default=X-Agenta"`
	UserAgent            string          `env:"HOOKRELAY_USER_AGENT, default=Agenta-Webhooks/1.0"`
	StandardWebhooks     bool            `env:"HOOKRELAY_STANDARD_WEBHOOKS, default=false"`
	SecretGrace          time.Duration   `env:"HOOKRELAY_SECRET_GRACE, default=24h"`
	WorkerConcurrency    int             `env:"HOOKRELAY_WORKER_CONCURRENCY, default=256"`
	ClaimIdle            time.Duration   `env:"HOOKRELAY_CLAIM_IDLE, default=1m"`

	// Endpoint health.
	BreakerFailures    int           `env:"HOOKRELAY_BREAKER_FAILURES, default=20"`
	BreakerCooldown    time.Duration `env:"HOOKRELAY_BREAKER_COOLDOWN, default=10s"`
	BreakerMaxCooldown time.Duration `env:"HOOKRELAY_BREAKER_MAX_COOLDOWN, default=10m"`
	DisableAfter       time.Duration `env:"HOOKRELAY_DISABLE_AFTER, default=120h"`

	// Relay.
	PollInterval time.Duration `env:"HOOKRELAY_POLL_INTERVAL, default=1s"`
	RelayBatch   int           `env:"HOOKRELAY_RELAY_BATCH, default=500"`

	// Reconciliation and retention.
	ReconcileInterval time.Duration `env:"HOOKRELAY_RECONCILE_INTERVAL, default=30s"`
	ReconcileAfter    time.Duration `env:"HOOKRELAY_RECONCILE_AFTER, default=5m"`
	RetainOutbox      time.Duration `env:"HOOKRELAY_RETAIN_OUTBOX, default=168h"`
	RetainDeliveries  time.Duration `env:"HOOKRELAY_RETAIN_DELIVERIES, default=720h"`
	RetentionInterval time.Duration `env:"HOOKRELAY_RETENTION_INTERVAL, default=10m"`

	// API.
	APIAddr  string `env:"HOOKRELAY_API_ADDR, default=:8080"`
	APIToken string `env:"HOOKRELAY_API_TOKEN"`
	// EventTypes are the event types a webhook may subscribe to (besides "*").
	EventTypes []string `env:"HOOKRELAY_EVENT_TYPES, default=config.deployed,config.committed,config.archived,webhook.test"`

	// MetricsAddr serves /metrics from relay and worker processes (the API
	// serves it on its own address); empty means not served.
	MetricsAddr string `env:"HOOKRELAY_METRICS_ADDR"`

	LogLevel slog.Level `env:"HOOKRELAY_LOG_LEVEL, default=info"`
}

// ClaimMargin is how much longer than the HTTP timeout an entry must sit idle
// before another worker may claim it, so that slow deliveries are not duplicated.
const ClaimMargin = 5 * time.Second

// Load reads the configuration from the process environment.
func Load(ctx context.Context) (Config, error) {
	return LoadFrom(ctx, envconfig.OsLookuper())
}

// LoadMap reads the configuration from a map (tests, embedding).
func LoadMap(ctx context.Context, env map[string]string) (Config, error) {
	return LoadFrom(ctx, envconfig.MapLookuper(env))
}

// LoadFrom reads the configuration through l and validates it. Every error
// names the variable at fault.
func LoadFrom(ctx context.Context, l envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: l}); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", nameVariable(err))
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// nameVariable rewrites go-envconfig's "Field: problem" errors as
// "VARIABLE: problem", since operators know variables, not Go fields.
func nameVariable(err error) error {
	field, rest, ok := strings.Cut(err.Error(), ":")
	if !ok {
		return err
	}
	f, ok := reflect.TypeFor[Config]().FieldByName(field)
	if !ok {
		return err
	}
	key, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return errors.New(key + ":" + rest)
}

// Validate checks the values that parse but make no sense: no count or
// duration may be negative, and only HOOKRELAY_RETRY_AFTER_MAX (ignore
// Retry-After) and HOOKRELAY_SECRET_GRACE (no grace) may be zero. Errors come
// in field order.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	if c.DatabaseURL == "" {
		bad("DATABASE_URL", "must not be empty")
	}
	if c.RedisURL == "" {
		bad("REDIS_URL", "must not be empty")
	} else if _, err := redisurl.Parse(c.RedisURL); err != nil {
		bad("REDIS_URL", "%v", err)
	}
	if c.Stream == "" {
		bad("HOOKRELAY_STREAM", "must not be empty")
	}
	if c.Group == "" {
		bad("HOOKRELAY_GROUP", "must not be empty")
	}
	if c.StreamShards < 1 || c.StreamShards > stream.MaxShards {
		bad("HOOKRELAY_STREAM_SHARDS", "must be between 1 and %d, got %d", stream.MaxShards, c.StreamShards)
	} else if c.StreamShards > 1 && strings.ContainsAny(c.Stream, "{}") {
		bad("HOOKRELAY_STREAM", "must not contain a hash tag ({…}) when HOOKRELAY_STREAM_SHARDS > 1: every shard would share its slot, got %q", c.Stream)
	}
	if len(c.RetrySchedule) == 0 {
		bad("HOOKRELAY_RETRY_SCHEDULE", "must list at least one delay")
	}
	for _, d := range c.RetrySchedule {
		if d <= 0 {
			bad("HOOKRELAY_RETRY_SCHEDULE", "delays must be positive, got %s", d)
			break
		}
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		bad("HOOKRELAY_MAX_ATTEMPTS", "must be between 1 and 100, got %d", c.MaxAttempts)
	}
	if c.Timeout <= 0 {
		bad("HOOKRELAY_TIMEOUT", "must be positive, got %s", c.Timeout)
	}
	if c.RetryAfterMax < 0 {
		bad("HOOKRELAY_RETRY_AFTER_MAX", "must not be negative, got %s", c.RetryAfterMax)
	}
	if c.ClaimIdle <= 0 {
		bad("HOOKRELAY_CLAIM_IDLE", "must be positive, got %s", c.ClaimIdle)
	} else if c.ClaimIdle < c.Timeout+ClaimMargin {
		bad("HOOKRELAY_CLAIM_IDLE", "must be at least HOOKRELAY_TIMEOUT + %s (%s), got %s",
			ClaimMargin, c.Timeout+ClaimMargin, c.ClaimIdle)
	}
	if c.SecretGrace < 0 {
		bad("HOOKRELAY_SECRET_GRACE", "must not be negative, got %s", c.SecretGrace)
	}
	if c.WorkerConcurrency < 1 || c.WorkerConcurrency > 10000 {
		bad("HOOKRELAY_WORKER_CONCURRENCY", "must be between 1 and 10000, got %d", c.WorkerConcurrency)
	}
	if c.BreakerFailures < 1 || c.BreakerFailures > 1000000 {
		bad("HOOKRELAY_BREAKER_FAILURES", "must be between 1 and 1000000, got %d", c.BreakerFailures)
	}
	if c.BreakerMaxCooldown < c.BreakerCooldown {
		bad("HOOKRELAY_BREAKER_MAX_COOLDOWN", "must be at least HOOKRELAY_BREAKER_COOLDOWN (%s), got %s",
			c.BreakerCooldown, c.BreakerMaxCooldown)
	}
	if c.PollInterval <= 0 {
		bad("HOOKRELAY_POLL_INTERVAL", "must be positive, got %s", c.PollInterval)
	}
	if c.RelayBatch < 1 || c.RelayBatch > 10000 {
		bad("HOOKRELAY_RELAY_BATCH", "must be between 1 and 10000, got %d", c.RelayBatch)
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{
		{"HOOKRELAY_BREAKER_COOLDOWN", c.BreakerCooldown},
		{"HOOKRELAY_DISABLE_AFTER", c.DisableAfter},
		{"HOOKRELAY_RECONCILE_INTERVAL", c.ReconcileInterval},
		{"HOOKRELAY_RECONCILE_AFTER", c.ReconcileAfter},
		{"HOOKRELAY_RETAIN_OUTBOX", c.RetainOutbox},
		{"HOOKRELAY_RETAIN_DELIVERIES", c.RetainDeliveries},
		{"HOOKRELAY_RETENTION_INTERVAL", c.RetentionInterval},
	} {
		if v.d <= 0 {
			bad(v.name, "must be positive, got %s", v.d)
		}
	}
	if c.ReconcileAfter > 0 && c.ReconcileAfter < c.Timeout+ClaimMargin {
		bad("HOOKRELAY_RECONCILE_AFTER", "must be at least HOOKRELAY_TIMEOUT + %s (%s), got %s",
			ClaimMargin, c.Timeout+ClaimMargin, c.ReconcileAfter)
	}
	if len(c.EventTypes) == 0 {
		bad("HOOKRELAY_EVENT_TYPES", "must list at least one event type")
	}
	if c.HeaderPrefix == "" {
		bad("HOOKRELAY_HEADER_PREFIX", "must not be empty")
	}
	if c.UserAgent == "" {
		bad("HOOKRELAY_USER_AGENT", "must not be empty")
	}
	return errors.Join(errs...)
}
