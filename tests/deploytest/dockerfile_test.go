package deploytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, USER, ...
	Args string
}

// stage is one FROM and what follows it.
type stage struct {
	Image, Name  string
	Instructions []instruction
}

func loadDockerfile(t *testing.T) []stage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		stages  []stage
		pending string
	)
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if pending == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			pending += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		full := pending + trimmed
		pending = ""
		cmd, args, _ := strings.Cut(full, " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			s := stage{Image: f[len(f)-1]}
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				s.Image, s.Name = f[len(f)-3], f[len(f)-1]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before the first FROM", in.Cmd)
		}
		last := &stages[len(stages)-1]
		last.Instructions = append(last.Instructions, in)
	}
	return stages
}

func (s stage) find(cmd string) []string {
	var out []string
	for _, in := range s.Instructions {
		if in.Cmd == cmd {
			out = append(out, in.Args)
		}
	}
	return out
}

func TestDockerfile_BuildsAStaticBinaryInAMultiStageBuild(t *testing.T) {
	t.Parallel()
	stages := loadDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a multi-stage build (builder and runtime)", len(stages))
	}
	builder := stages[0]
	if !strings.HasPrefix(builder.Image, "golang:1.26") || builder.Name == "" {
		t.Errorf("first stage = FROM %s AS %q, want a named golang:1.26 builder", builder.Image, builder.Name)
	}
	var static, built bool
	for _, args := range append(builder.find("RUN"), builder.find("ENV")...) {
		static = static || strings.Contains(args, "CGO_ENABLED=0")
		built = built || (strings.Contains(args, "go build") && strings.Contains(args, "./cmd/hookrelay"))
	}
	if !static {
		t.Error("the builder does not set CGO_ENABLED=0: the binary would not be static")
	}
	if !built {
		t.Error("the builder does not run go build ./cmd/hookrelay")
	}
}

func TestDockerfile_FinalImageIsMinimalNonRootAndRunsHookrelay(t *testing.T) {
	t.Parallel()
	stages := loadDockerfile(t)
	final := stages[len(stages)-1]
	switch {
	case strings.Contains(final.Image, "distroless/static"):
		// CA certificates included.
	case final.Image == "scratch":
		if !strings.Contains(strings.Join(final.find("COPY"), " "), "ca-certificates") {
			t.Error("a scratch image needs CA certificates copied in, or HTTPS webhooks fail")
		}
	default:
		t.Errorf("final image = %s, want distroless static or scratch", final.Image)
	}
	copies := strings.Join(final.find("COPY"), "\n")
	if !strings.Contains(copies, "--from="+stages[0].Name) {
		t.Errorf("final stage copies %q, want the binary --from=%s", copies, stages[0].Name)
	}
	users := final.find("USER")
	if len(users) == 0 {
		t.Fatal("final stage has no USER: the container would run as root")
	}
	user, _, _ := strings.Cut(users[len(users)-1], ":")
	if user == "root" || user == "0" || user == "" {
		t.Errorf("final USER = %q, want a non-root user", users[len(users)-1])
	}
	entry := final.find("ENTRYPOINT")
	if len(entry) == 0 || !strings.Contains(entry[len(entry)-1], "hookrelay") {
		t.Errorf("ENTRYPOINT = %v, want the hookrelay binary", entry)
	}
}

func TestDockerignore_KeepsTheBuildInputsAndDropsTheRest(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	ignored := func(path string) bool {
		for _, p := range patterns {
			p = strings.TrimPrefix(p, "**/")
			for _, candidate := range []string{path, filepath.Base(path), strings.Split(path, "/")[0]} {
				if ok, _ := filepath.Match(p, candidate); ok {
					return true
				}
			}
		}
		return false
	}
	if !ignored(".git") {
		t.Error(".dockerignore does not exclude .git")
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd/hookrelay/main.go", "migrations/00001_schema.sql", "sql/consistency_check.sql", "outbox/outbox.go"} {
		if ignored(need) {
			t.Errorf(".dockerignore excludes %s, which the build needs", need)
		}
	}
}
