// Package testpg runs a private PostgreSQL cluster for tests that restart,
// crash or stop Postgres, which they must not do to the shared server. The
// cluster lives in a temporary directory on a free loopback port and is
// removed when the test ends.
//
// It needs PostgreSQL's server programs (initdb, pg_ctl) on PATH; a test that
// cannot find them fails, saying so. When the test runs as root, the cluster
// is created and run as the "postgres" OS user, since Postgres refuses root.
package testpg

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/internal/testkit/testbin"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/migrations"
)

// ReadyTimeout bounds how long Start, Restart and Crash wait for the server
// to accept connections.
const ReadyTimeout = 60 * time.Second

// settings are appended to postgresql.conf: durability is not under test
// (an immediate stop keeps what was committed even without fsync).
var settings = []string{
	"listen_addresses = '127.0.0.1'",
	"fsync = off",
	"synchronous_commit = on",
	"full_page_writes = off",
	"max_connections = 200",
	"max_prepared_transactions = 10",
	"shared_buffers = 32MB",
	"log_min_messages = warning",
}

// Cluster is a private PostgreSQL server.
type Cluster struct {
	t    testing.TB
	Port int
	dir  string // the temporary directory: data/, the log and the socket
	cred *syscall.Credential
	bin  map[string]string // program name → path
}

// serverProgram finds a PostgreSQL server program: on PATH, or where
// Debian's packages put it (the newest version first).
func serverProgram(prog string) (string, error) {
	path, err := exec.LookPath(prog)
	if err == nil {
		return path, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + prog)
	if len(found) == 0 {
		return "", err
	}
	sort.Strings(found)
	return found[len(found)-1], nil
}

// Start creates and starts a private cluster; it is stopped (immediately)
// and deleted when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Port: testbin.FreePort(t), bin: map[string]string{}}
	for _, prog := range []string{"initdb", "pg_ctl"} {
		path, err := serverProgram(prog)
		if err != nil {
			t.Fatalf("testpg: %s is required (PostgreSQL's server programs, on PATH or in /usr/lib/postgresql/*/bin) for this test: %v", prog, err)
		}
		c.bin[prog] = path
	}
	dir, err := os.MkdirTemp("", "testpg-")
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	c.dir = dir
	t.Cleanup(func() {
		_ = c.pgCtl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		c.cred = postgresUser(t)
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			t.Fatalf("testpg: %v", err)
		}
	}
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("testpg: initdb: %v\n%s", err, out)
	}
	conf := append([]string{"port = " + strconv.Itoa(c.Port), "unix_socket_directories = '" + dir + "'"}, settings...)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		for _, line := range conf {
			fmt.Fprintln(f, line)
		}
		err = f.Close()
	}
	if err != nil {
		t.Fatalf("testpg: write postgresql.conf: %v", err)
	}
	c.Start()
	return c
}

// URL is the address of the cluster's postgres database.
func (c *Cluster) URL() string { return c.urlOf("postgres") }

func (c *Cluster) urlOf(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Start starts the (stopped) server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.pgCtl("start"); err != nil {
		c.t.Fatalf("testpg: start: %v\n%s", err, c.Log())
	}
	c.waitReady()
}

// Stop stops the server: mode is pg_ctl's -m (smart, fast or immediate).
// Until Start, clients get connection refused: an outage.
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	if err := c.pgCtl("stop", "-m", mode); err != nil {
		c.t.Fatalf("testpg: stop -m %s: %v", mode, err)
	}
}

// Restart is pg_ctl restart -m mode: sessions are ended, the server comes
// back with everything committed.
func (c *Cluster) Restart(mode string) {
	c.t.Helper()
	if err := c.pgCtl("restart", "-m", mode); err != nil {
		c.t.Fatalf("testpg: restart -m %s: %v\n%s", mode, err, c.Log())
	}
	c.waitReady()
}

// Crash stops the server the way a crash would (-m immediate: no shutdown
// checkpoint, sessions cut) and starts it again, which runs crash recovery.
func (c *Cluster) Crash() {
	c.t.Helper()
	c.Stop("immediate")
	c.Start()
}

// Log is the server's log so far.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	return string(b)
}

// DB is a migrated database in the cluster.
type DB struct {
	Pool *pgxpool.Pool
	URL  string
	Name string
}

// MigratedDB creates a database in the cluster and applies hookrelay's
// migrations to it (as testdb does on the shared server).
func (c *Cluster) MigratedDB() *DB {
	c.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		c.t.Fatalf("testpg: %v", err)
	}
	defer conn.Close(ctx)
	name := "hookrelay_" + randomHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		c.t.Fatalf("testpg: create database: %v", err)
	}
	db := &DB{URL: c.urlOf(name), Name: name}
	if db.Pool, err = pgxpool.New(ctx, db.URL); err != nil {
		c.t.Fatalf("testpg: %v", err)
	}
	c.t.Cleanup(db.Pool.Close)
	if _, err := migrations.Apply(ctx, db.Pool); err != nil {
		c.t.Fatalf("testpg: migrate %s: %v", name, err)
	}
	return db
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// pgCtl runs pg_ctl action. The server always logs to a file: one that kept
// pg_ctl's output would hold run's pipe open as long as it runs.
func (c *Cluster) pgCtl(action string, args ...string) error {
	args = append([]string{action, "-D", c.data(), "-l", filepath.Join(c.dir, "postgres.log"),
		"-w", "-t", strconv.Itoa(int(ReadyTimeout.Seconds()))}, args...)
	out, err := c.run("pg_ctl", args...)
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %w\n%s", args, err, out)
	}
	return nil
}

// run runs a PostgreSQL program, as the postgres OS user when we are root.
func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	cmd := exec.Command(c.bin[prog], args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second // never hang on a child that kept the pipe
	err := cmd.Run()
	return out.Bytes(), err
}

// waitReady waits until the server answers a query.
func (c *Cluster) waitReady() {
	c.t.Helper()
	var err error
	testwait.Until(c.t, ReadyTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, c.URL()); err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		return err == nil
	}, func() string {
		return fmt.Sprintf("testpg: server on port %d did not answer: %v\n%s", c.Port, err, c.Log())
	})
}

func postgresUser(t testing.TB) *syscall.Credential {
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("testpg: running as root, so the cluster must run as the postgres OS user, which is missing: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
