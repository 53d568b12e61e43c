package deploytest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hookrelay/hookrelay/internal/config"
	hrservice "github.com/hookrelay/hookrelay/internal/service"
)

// root is the repository root, relative to this package.
const root = "../.."

type composeFile struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string               `yaml:"image"`
	Build       *build               `yaml:"build"`
	Command     words                `yaml:"command"`
	Environment map[string]string    `yaml:"environment"`
	DependsOn   map[string]dependsOn `yaml:"depends_on"`
	Healthcheck *healthcheck         `yaml:"healthcheck"`
	Ports       []string             `yaml:"ports"`
	Restart     string               `yaml:"restart"`
	// StopGracePeriod is how long compose waits after SIGTERM before SIGKILL.
	StopGracePeriod string `yaml:"stop_grace_period"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type dependsOn struct {
	Condition string `yaml:"condition"`
}

type healthcheck struct {
	Test words `yaml:"test"`
}

// words is a compose command or test: a list, or a string split on spaces.
type words []string

func (w *words) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*w = strings.Fields(n.Value)
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*w = list
	return nil
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	return c
}

// hookrelayServices are the services that run the hookrelay binary, with the
// services each must wait for and the condition it waits on.
var hookrelayServices = map[string]map[string]string{
	"migrate": {"postgres": "service_healthy"},
	"relay":   {"migrate": "service_completed_successfully", "postgres": "service_healthy", "redis": "service_healthy"},
	"worker":  {"migrate": "service_completed_successfully", "postgres": "service_healthy", "redis": "service_healthy"},
	"api":     {"migrate": "service_completed_successfully", "postgres": "service_healthy", "redis": "service_healthy"},
}

func TestCompose_HasEveryServiceOfTheDesign(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for _, name := range []string{"postgres", "redis", "migrate", "relay", "worker", "api"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %q is missing", name)
		}
	}
	if img := c.Services["postgres"].Image; !strings.HasPrefix(img, "postgres:15") {
		t.Errorf("postgres image = %q, want postgres:15", img)
	}
	if img := c.Services["redis"].Image; !strings.HasPrefix(img, "redis:7") {
		t.Errorf("redis image = %q, want redis:7", img)
	}
}

func TestCompose_HookrelayServicesRunTheirCommandWithAValidConfiguration(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	known := configVariables()
	for name, wantDeps := range hookrelayServices {
		s := c.Services[name]
		if !slices.Equal(s.Command, []string{name}) {
			t.Errorf("%s: command = %q, want [%s]", name, s.Command, name)
		}
		if s.Build == nil || s.Build.Context != "." {
			t.Errorf("%s: want build context \".\" (the Dockerfile at the root)", name)
		} else if _, err := os.Stat(filepath.Join(root, s.Build.Context, dockerfileName(s.Build))); err != nil {
			t.Errorf("%s: build file: %v", name, err)
		}
		assertServiceURL(t, name, s.Environment, "DATABASE_URL", "postgres", "postgres")
		assertServiceURL(t, name, s.Environment, "REDIS_URL", "redis", "redis")
		env := map[string]string{}
		for k, v := range s.Environment {
			if !known[k] {
				t.Errorf("%s: environment variable %s is not one hookrelay reads", name, k)
			}
			env[k] = interpolate(v)
		}
		if _, err := config.LoadMap(context.Background(), env); err != nil {
			t.Errorf("%s: its environment does not load: %v", name, err)
		}
		if !reflect.DeepEqual(conditions(s.DependsOn), wantDeps) {
			t.Errorf("%s: depends_on = %v, want %v", name, conditions(s.DependsOn), wantDeps)
		}
	}
	if r := c.Services["migrate"].Restart; r != "no" {
		t.Errorf("migrate is one-shot: restart = %q, want \"no\" (anything else restarts it after it succeeds)", r)
	}
}

// stopMargin is how much longer than hrservice.ShutdownTimeout compose must wait
// before SIGKILL: the process still closes its pools and exits after its
// services' stop deadline.
const stopMargin = 10 * time.Second

func TestCompose_StopGracePeriodOutlastsTheShutdownTimeout(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for name := range hookrelayServices {
		if name == "migrate" {
			continue // one-shot, holds no in-flight work
		}
		v := c.Services[name].StopGracePeriod
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("%s: stop_grace_period %q: %v", name, v, err)
			continue
		}
		if d < hrservice.ShutdownTimeout+stopMargin {
			t.Errorf("%s: stop_grace_period %s, want at least the shutdown timeout %s + %s, "+
				"or SIGKILL races the clean stop", name, d, hrservice.ShutdownTimeout, stopMargin)
		}
	}
}

func TestCompose_DependenciesExistAndHealthConditionsHaveHealthchecks(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for name, s := range c.Services {
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on %s, which is not a service", name, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}
	pg := c.Services["postgres"].Healthcheck
	if pg == nil || !strings.Contains(strings.Join(pg.Test, " "), "pg_isready") {
		t.Errorf("postgres healthcheck = %+v, want pg_isready", pg)
	}
	rd := c.Services["redis"].Healthcheck
	if rd == nil || !strings.Contains(strings.Join(rd.Test, " "), "redis-cli ping") {
		t.Errorf("redis healthcheck = %+v, want redis-cli ping", rd)
	}
	api := c.Services["api"]
	if api.Healthcheck == nil || !strings.Contains(strings.Join(api.Healthcheck.Test, " "), "/healthz") {
		t.Errorf("api healthcheck = %+v, want one on /healthz", api.Healthcheck)
	}
	if !slices.ContainsFunc(api.Ports, func(p string) bool { return strings.HasSuffix(p, ":8080") || p == "8080" }) {
		t.Errorf("api ports = %v, want 8080 published", api.Ports)
	}
}

func TestCompose_RedisKeepsAnAppendOnlyFileAndNeverEvicts(t *testing.T) {
	t.Parallel()
	cmd := loadCompose(t).Services["redis"].Command
	if len(cmd) == 0 || cmd[0] != "redis-server" {
		t.Fatalf("redis command = %q, want redis-server with options", cmd)
	}
	for option, want := range map[string]string{
		"--appendonly":       "yes",
		"--appendfsync":      "everysec",
		"--maxmemory-policy": "noeviction",
	} {
		i := slices.Index(cmd, option)
		if i < 0 || i+1 >= len(cmd) || cmd[i+1] != want {
			t.Errorf("redis command %q: want %s %s", cmd, option, want)
		}
	}
}

// configVariables are the environment variables config.Config reads.
func configVariables() map[string]bool {
	vars := map[string]bool{}
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("env"), ",")
		if name != "" {
			vars[name] = true
		}
	}
	return vars
}

func assertServiceURL(t *testing.T, service string, env map[string]string, key, scheme, host string) {
	t.Helper()
	u, err := url.Parse(env[key])
	if err != nil || u.Scheme != scheme || u.Hostname() != host {
		t.Errorf("%s: %s = %q, want a %s:// URL to the %s service", service, key, env[key], scheme, host)
	}
}

var composeVariable = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}`)

// interpolate resolves ${VAR:-default} the way compose does with VAR unset.
func interpolate(v string) string {
	return composeVariable.ReplaceAllString(v, "$1")
}

func conditions(deps map[string]dependsOn) map[string]string {
	out := map[string]string{}
	for k, d := range deps {
		out[k] = d.Condition
	}
	return out
}

func dockerfileName(b *build) string {
	if b.Dockerfile == "" {
		return "Dockerfile"
	}
	return b.Dockerfile
}
