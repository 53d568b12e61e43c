package config_test

import (
	"context"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/config"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/maintenance"
	"github.com/hookrelay/hookrelay/internal/stream"
	"github.com/hookrelay/hookrelay/relay"
)

// TestLoad_DefaultsAreTheOwningPackagesConstants proves that every default
// written in a config tag is the constant of the package that owns the
// behaviour (struct tags cannot name constants, so the value is repeated in
// the tag and in the README). A new defaulted field fails here until it is
// listed.
func TestLoad_DefaultsAreTheOwningPackagesConstants(t *testing.T) {
	c, err := config.LoadMap(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]struct{ got, want any }{
		"RetrySchedule":      {c.RetrySchedule, deliver.DefaultRetrySchedule()},
		"MaxAttempts":        {c.MaxAttempts, deliver.DefaultMaxAttempts},
		"WorkerConcurrency":  {c.WorkerConcurrency, deliver.DefaultConcurrency},
		"ClaimIdle":          {c.ClaimIdle, deliver.DefaultClaimIdle},
		"BreakerFailures":    {c.BreakerFailures, deliver.DefaultBreakerFailures},
		"BreakerCooldown":    {c.BreakerCooldown, deliver.DefaultBreakerCooldown},
		"BreakerMaxCooldown": {c.BreakerMaxCooldown, deliver.DefaultBreakerMaxCooldown},
		"DisableAfter":       {c.DisableAfter, deliver.DefaultDisableAfter},
		"Timeout":            {c.Timeout, httpsend.DefaultTimeout},
		"RetryAfterMax":      {c.RetryAfterMax, httpsend.DefaultRetryAfterMax},
		"HeaderPrefix":       {c.HeaderPrefix, httpsend.DefaultHeaderPrefix},
		"UserAgent":          {c.UserAgent, httpsend.DefaultUserAgent},
		"PollInterval":       {c.PollInterval, relay.DefaultPollInterval},
		"RelayBatch":         {c.RelayBatch, relay.DefaultBatchSize},
		"ReconcileInterval":  {c.ReconcileInterval, maintenance.DefaultReconcileInterval},
		"ReconcileAfter":     {c.ReconcileAfter, maintenance.DefaultReconcileAfter},
		"RetainOutbox":       {c.RetainOutbox, maintenance.DefaultOutboxAge},
		"RetainDeliveries":   {c.RetainDeliveries, maintenance.DefaultDeliveriesAge},
		"RetentionInterval":  {c.RetentionInterval, maintenance.DefaultRetentionInterval},
		"APIAddr":            {c.APIAddr, api.DefaultAddr},
		"SecretGrace":        {c.SecretGrace, api.DefaultSecretGrace},
		"EventTypes":         {c.EventTypes, api.DefaultEventTypes()},
		"StreamShards":       {c.StreamShards, stream.DefaultShards},

		// Settings no package defaults: they exist only as configuration.
		"DatabaseURL":          {c.DatabaseURL, "postgres://postgres@localhost:5432/postgres?sslmode=disable"},
		"RedisURL":             {c.RedisURL, "redis://localhost:6379/0"},
		"Stream":               {c.Stream, "queues:webhooks"},
		"Group":                {c.Group, "worker-webhooks"},
		"AllowPrivateNetworks": {c.AllowPrivateNetworks, false},
		"StandardWebhooks":     {c.StandardWebhooks, false},
		"LogLevel":             {c.LogLevel, slog.LevelInfo},
	}
	for field, v := range defaults {
		if !reflect.DeepEqual(v.got, v.want) {
			t.Errorf("%s: the config tag's default is %v, the constant %v", field, v.got, v.want)
		}
	}
	for f := range reflect.TypeFor[config.Config]().Fields() {
		if _, ok := defaults[f.Name]; !ok && strings.Contains(f.Tag.Get("env"), "default=") {
			t.Errorf("%s has a default in its config tag that this test does not compare", f.Name)
		}
	}
}

func TestLoad_InvalidValueNamesTheVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"HOOKRELAY_TIMEOUT":                {"HOOKRELAY_TIMEOUT": "ten seconds"},
		"HOOKRELAY_MAX_ATTEMPTS":           {"HOOKRELAY_MAX_ATTEMPTS": "0"},
		"HOOKRELAY_RETRY_SCHEDULE":         {"HOOKRELAY_RETRY_SCHEDULE": "1m,-5s"},
		"HOOKRELAY_ALLOW_PRIVATE_NETWORKS": {"HOOKRELAY_ALLOW_PRIVATE_NETWORKS": "maybe"},
		"HOOKRELAY_CLAIM_IDLE":             {"HOOKRELAY_TIMEOUT": "30s", "HOOKRELAY_CLAIM_IDLE": "20s"},
		"HOOKRELAY_WORKER_CONCURRENCY":     {"HOOKRELAY_WORKER_CONCURRENCY": "-1"},
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := config.LoadMap(context.Background(), env)
			if err == nil {
				t.Fatalf("LoadMap(%v) succeeded, want an error", env)
			}
			if !strings.Contains(err.Error(), name) {
				t.Fatalf("error %q does not name %s", err, name)
			}
		})
	}
}

// TestLoad_RedisURLSelectsTheTopology accepts one URL of each topology the
// README shows, and refuses a malformed one of each with an error that
// names REDIS_URL and does not quote the password.
func TestLoad_RedisURLSelectsTheTopology(t *testing.T) {
	for _, url := range []string{
		"redis://localhost:6379/0",
		"rediss://hookrelay:secret@redis.internal:6380/2",
		"redis-sentinel://:secret@sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/mymaster?db=0&sentinel_password=secret",
		"redis-cluster://:secret@redis-1:6379,redis-2:6379,redis-3:6379",
	} {
		if _, err := config.LoadMap(context.Background(), map[string]string{"REDIS_URL": url}); err != nil {
			t.Errorf("REDIS_URL=%s: %v", url, err)
		}
	}
	for _, url := range []string{
		"localhost:6379",
		"redis://:secret@localhost:port/0",
		"redis-sentinel://:secret@sentinel-1:26379,sentinel-2:26379",    // no master name
		"redis-cluster://:secret@redis-1:6379,redis-2:6379/1",           // a Cluster has only db 0
		"redis-cluster://:secret@redis-1:6379,redis-2:6379?read_only=1", // hookrelay reads from masters
	} {
		_, err := config.LoadMap(context.Background(), map[string]string{"REDIS_URL": url})
		if err == nil || !strings.Contains(err.Error(), "REDIS_URL:") {
			t.Errorf("REDIS_URL=%s: error %v, want one naming REDIS_URL", url, err)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("REDIS_URL=%s: error %q quotes the password", url, err)
		}
	}
}

// TestValidate_RefusesNegativeCountsAndDurations sets one variable at a time
// to a negative value and to zero: a negative value is always refused, zero
// only where it means nothing, and the error names the variable. Every count
// and duration of Config must be listed.
func TestValidate_RefusesNegativeCountsAndDurations(t *testing.T) {
	cases := []struct {
		name, negative, zero string
		zeroAllowed          bool
	}{
		{"HOOKRELAY_RETRY_SCHEDULE", "1m,-1m", "1m,0s", false},
		{"HOOKRELAY_MAX_ATTEMPTS", "-1", "0", false},
		{"HOOKRELAY_TIMEOUT", "-1s", "0s", false},
		{"HOOKRELAY_RETRY_AFTER_MAX", "-1s", "0s", true},
		{"HOOKRELAY_SECRET_GRACE", "-1s", "0s", true},
		{"HOOKRELAY_WORKER_CONCURRENCY", "-1", "0", false},
		{"HOOKRELAY_STREAM_SHARDS", "-1", "0", false},
		{"HOOKRELAY_CLAIM_IDLE", "-1m", "0s", false},
		{"HOOKRELAY_BREAKER_FAILURES", "-1", "0", false},
		{"HOOKRELAY_BREAKER_COOLDOWN", "-1s", "0s", false},
		{"HOOKRELAY_BREAKER_MAX_COOLDOWN", "-1s", "0s", false},
		{"HOOKRELAY_DISABLE_AFTER", "-1h", "0s", false},
		{"HOOKRELAY_POLL_INTERVAL", "-1s", "0s", false},
		{"HOOKRELAY_RELAY_BATCH", "-1", "0", false},
		{"HOOKRELAY_RECONCILE_INTERVAL", "-1s", "0s", false},
		{"HOOKRELAY_RECONCILE_AFTER", "-1m", "0s", false},
		{"HOOKRELAY_RETAIN_OUTBOX", "-1h", "0s", false},
		{"HOOKRELAY_RETAIN_DELIVERIES", "-1h", "0s", false},
		{"HOOKRELAY_RETENTION_INTERVAL", "-1m", "0s", false},
	}
	listed := map[string]bool{}
	for _, tc := range cases {
		listed[tc.name] = true
		for value, wantErr := range map[string]bool{tc.negative: true, tc.zero: !tc.zeroAllowed} {
			t.Run(tc.name+"="+value, func(t *testing.T) {
				_, err := config.LoadMap(context.Background(), map[string]string{tc.name: value})
				switch {
				case wantErr && err == nil:
					t.Fatalf("%s=%s was accepted", tc.name, value)
				case wantErr && !strings.Contains(err.Error(), tc.name+":"):
					t.Fatalf("error %q does not name %s", err, tc.name)
				case !wantErr && err != nil:
					t.Fatalf("%s=%s was refused: %v", tc.name, value, err)
				}
			})
		}
	}
	for f := range reflect.TypeFor[config.Config]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		switch f.Type {
		case reflect.TypeFor[int](), reflect.TypeFor[time.Duration](), reflect.TypeFor[[]time.Duration]():
			if !listed[name] {
				t.Errorf("%s is a count or a duration this test does not try", name)
			}
		}
	}
}

// HOOKRELAY_STREAM_SHARDS is bounded, and shards need a base key without a
// hash tag of its own (every shard would share its slot).
func TestValidate_BoundsStreamShards(t *testing.T) {
	for _, env := range []map[string]string{
		{"HOOKRELAY_STREAM_SHARDS": "257"},
		{"HOOKRELAY_STREAM_SHARDS": "4", "HOOKRELAY_STREAM": "{hooks}:queue"},
	} {
		_, err := config.LoadMap(context.Background(), env)
		if err == nil || !strings.Contains(err.Error(), "HOOKRELAY_STREAM") {
			t.Errorf("%v: error %v, want one naming the variable", env, err)
		}
	}
	c, err := config.LoadMap(context.Background(), map[string]string{"HOOKRELAY_STREAM_SHARDS": "256"})
	if err != nil || c.StreamShards != 256 {
		t.Fatalf("256 shards: %+v, %v", c.StreamShards, err)
	}
}

// TestREADME_ListsEveryVariableWithItsDefault keeps the README's
// configuration table in step with the tags: the same variables, and each
// default written as the tag writes it ("empty" where there is none).
func TestREADME_ListsEveryVariableWithItsDefault(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| ([^|]+) \\|").FindAllSubmatch(readme, -1) {
		documented[string(m[1])] = strings.Trim(strings.TrimSpace(string(m[2])), "`")
	}
	for f := range reflect.TypeFor[config.Config]().Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
		want := "empty"
		if _, def, ok := strings.Cut(opts, "default="); ok {
			want = def
		}
		got, ok := documented[name]
		delete(documented, name)
		switch {
		case !ok:
			t.Errorf("README does not list %s", name)
		case got != want:
			t.Errorf("README gives %s the default %q, its tag %q", name, got, want)
		}
	}
	for name := range documented {
		t.Errorf("README lists %s, which Config does not read", name)
	}
}
