package config_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/config"
)

func TestLoad_DefaultsMatchTheDesign(t *testing.T) {
	c, err := config.LoadMap(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 4 * time.Hour}
	if len(c.RetrySchedule) != len(want) {
		t.Fatalf("RetrySchedule = %v, want %v", c.RetrySchedule, want)
	}
	for i := range want {
		if c.RetrySchedule[i] != want[i] {
			t.Fatalf("RetrySchedule = %v, want %v", c.RetrySchedule, want)
		}
	}
	if c.Stream != "queues:webhooks" || c.Group != "worker-webhooks" || c.MaxAttempts != 6 ||
		c.Timeout != 10*time.Second || c.AllowPrivateNetworks || c.APIAddr != ":8080" ||
		c.HeaderPrefix != "X-Agenta" || c.UserAgent != "Agenta-Webhooks/1.0" ||
		c.DatabaseURL != "postgres://postgres@localhost:5432/postgres?sslmode=disable" ||
		c.RedisURL != "redis://localhost:6379/0" {
		t.Fatalf("defaults differ from DESIGN.md: %+v", c)
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
