package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// child is a hookrelay process the bench started (`hookrelay worker`,
// `hookrelay relay`), as an operator runs one next to the application.
type child struct {
	name   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer // read only once the child exited (Wait returned)
	exited chan error
}

// startChild runs `Config.Binary command` on the bench database and Redis,
// on stream key and group, with hookrelay's defaults for everything but
// extra (KEY=value entries) and the loopback receiver being allowed. No
// HOOKRELAY_* setting of the bench's own environment reaches the child.
func (e *env) startChild(ctx context.Context, command, key, group string, extra ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, e.cfg.Binary, command)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKRELAY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"DATABASE_URL="+withAppName(e.dbURL, "hookrelay-"+command), "REDIS_URL="+e.cfg.RedisURL,
		"HOOKRELAY_STREAM="+key, "HOOKRELAY_GROUP="+group,
		"HOOKRELAY_ALLOW_PRIVATE_NETWORKS=true", "HOOKRELAY_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, extra...)
	c := &child{name: command, cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", e.cfg.Binary, command, err)
	}
	go func() { c.exited <- cmd.Wait() }()
	return c, nil
}

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// alive fails if the child has exited already.
func (c *child) alive() error {
	select {
	case err := <-c.exited:
		c.exited <- err
		return fmt.Errorf("%s exited early (%v): %s", c.name, err, c.tail())
	default:
		return nil
	}
}

// stop asks the child to stop (SIGTERM), waits for it up to 30 s and kills
// it then. It returns the child's own failure, if it had one.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		c.exited <- err
		if err != nil {
			return fmt.Errorf("%s exited: %w: %s", c.name, err, c.tail())
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		c.exited <- <-c.exited
		return fmt.Errorf("%s did not stop within 30s of SIGTERM: %s", c.name, c.tail())
	}
}

// tail is the end of the child's stderr, for error messages; only once it exited.
func (c *child) tail() string { return lastLines(c.stderr.String(), 5) }

// withAppName sets application_name on a database URL, so that the server's
// backends of each child can be told apart (pg_stat_activity).
func withAppName(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}
