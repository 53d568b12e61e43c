package deploytest

import (
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompose_EveryCommandItRunsIsACommandOfTheBinary builds cmd/hookrelay and
// checks that each command compose runs (the services' commands and the api
// healthcheck) is one the binary lists in its usage.
func TestCompose_EveryCommandItRunsIsACommandOfTheBinary(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build cmd/hookrelay: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "hookrelay")
	build := exec.Command(goTool, "build", "-o", bin, "./cmd/hookrelay")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hookrelay: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("hookrelay help: %v\n%s", err, out)
	}
	commands := usageCommands(string(out))
	if len(commands) == 0 {
		t.Fatalf("found no commands in the usage of hookrelay help:\n%s", out)
	}

	c := loadCompose(t)
	for name := range hookrelayServices {
		if cmd := c.Services[name].Command; len(cmd) == 0 || !commands[cmd[0]] {
			t.Errorf("service %s runs `hookrelay %s`, which is not a command of the binary (it has %v)", name, strings.Join(cmd, " "), keys(commands))
		}
	}
	if hc := c.Services["api"].Healthcheck; hc != nil {
		test := hc.Test
		if len(test) > 0 && (test[0] == "CMD" || test[0] == "CMD-SHELL") {
			test = test[1:]
		}
		if len(test) < 2 || !strings.HasSuffix(test[0], "hookrelay") || !commands[test[1]] {
			t.Errorf("the api healthcheck runs %q; the image has no shell or curl, so it must be a command of the binary (it has %v)", test, keys(commands))
		}
	}
}

// usageCommands reads the command names from hookrelay's usage text: the
// first word of each indented line after "commands:".
func usageCommands(usage string) map[string]bool {
	commands := map[string]bool{}
	in := false
	for _, line := range strings.Split(usage, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "commands:"):
			in = true
		case in && strings.HasPrefix(line, "  "):
			if f := strings.Fields(line); len(f) > 0 {
				commands[f[0]] = true
			}
		case in && strings.TrimSpace(line) == "":
			if len(commands) > 0 {
				in = false
			}
		}
	}
	return commands
}

func keys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
