package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux the bench runs on (it is fixed by the kernel's ABI, not by
// CONFIG_HZ).
const userHZ = 100

// cpuParts names the parts of a run whose CPU time the meter reads, in
// report order. Children are added by name.
const (
	cpuBench    = "bench"    // this process: the writers and the receiver, and whatever runs in it
	cpuPostgres = "postgres" // every process of the Postgres server
	cpuRedis    = "redis"    // the Redis server
)

// cpuMeter reads the CPU time (user + system) used so far by this process,
// by named child processes, by the Postgres server (the postmaster and its
// processes, exited ones included, when it runs on this machine) and by the
// Redis server (its own INFO). On a server shared with other work the
// figures include that work: measure on dedicated servers.
type cpuMeter struct {
	postmaster int // 0: the server's processes are not readable here
	children   map[string]int
	pool       *pgxpool.Pool
	rdb        redis.UniversalClient
}

// usage is what a run used: the CPU time of each part (a part that could
// not be read is missing) and the WAL the Postgres server wrote (every
// database's), in bytes; wal is -1 when it could not be read.
type usage struct {
	cpu map[string]time.Duration
	wal int64
}

// newCPUMeter finds the Postgres server's postmaster through the bench's
// own connection: the parent of its backend.
func (e *env) newCPUMeter(ctx context.Context, children map[string]int) *cpuMeter {
	m := &cpuMeter{children: children, pool: e.pool, rdb: e.rdb}
	var backend int
	if err := e.pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err == nil {
		if st, err := readStat(backend); err == nil {
			m.postmaster = st.ppid
		}
	}
	return m
}

// read samples every part, and the server's WAL position.
func (m *cpuMeter) read(ctx context.Context) usage {
	u := usage{cpu: map[string]time.Duration{}, wal: -1}
	use := u.cpu
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		use[cpuBench] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for name, pid := range m.children {
		if st, err := readStat(pid); err == nil {
			use[name] = st.cpu
		}
	}
	if m.postmaster != 0 {
		if d, ok := treeCPU(m.postmaster); ok {
			use[cpuPostgres] = d
		}
		m.backends(ctx, use)
	}
	if d, ok := redisCPU(ctx, m.rdb); ok {
		use[cpuRedis] = d
	}
	_ = m.pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint`).Scan(&u.wal)
	return u
}

// backends adds the CPU time of the bench database's backends, by the
// application_name of their connections, as "postgres[<name>]": the part of
// the server's work each client caused (a backend that exits meanwhile is
// counted in the server's total only).
func (m *cpuMeter) backends(ctx context.Context, use map[string]time.Duration) {
	rows, err := m.pool.Query(ctx, `SELECT pid, application_name FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'`)
	if err != nil {
		return
	}
	var pid int
	var app string
	_, _ = pgx.ForEachRow(rows, []any{&pid, &app}, func() error {
		if st, err := readStat(pid); err == nil {
			use[backendPart(app)] += st.cpu
		}
		return nil
	})
}

func backendPart(app string) string { return cpuPostgres + "[" + cmp.Or(app, "unnamed") + "]" }

// since is what was used from before to u.
func (u usage) since(before usage) usage {
	out := usage{cpu: map[string]time.Duration{}, wal: -1}
	for k, v := range u.cpu {
		if b, ok := before.cpu[k]; ok {
			out.cpu[k] = v - b
		}
	}
	if u.wal >= 0 && before.wal >= 0 {
		out.wal = u.wal - before.wal
	}
	return out
}

// procStat is what the bench reads of /proc/<pid>/stat.
type procStat struct {
	ppid int
	cpu  time.Duration // utime + stime
	dead time.Duration // cutime + cstime: its children that exited and were waited for
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name, in parentheses, may hold spaces: the fields start
	// after its last parenthesis, at field 3 (state).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i-3], 10, 64); return v }
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / userHZ }
	return procStat{ppid: int(n(4)), cpu: tick(n(14) + n(15)), dead: tick(n(16) + n(17))}, nil
}

// treeCPU is the CPU time of root, of its living children and of those that
// exited (root's cutime and cstime).
func treeCPU(root int) (time.Duration, bool) {
	st, err := readStat(root)
	if err != nil {
		return 0, false
	}
	total := st.cpu + st.dead
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		if c, err := readStat(pid); err == nil && c.ppid == root {
			total += c.cpu
		}
	}
	return total, true
}

// redisCPU is the Redis server's CPU time, from INFO cpu.
func redisCPU(ctx context.Context, rdb redis.UniversalClient) (time.Duration, bool) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, false
	}
	var total float64
	found := 0
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, false
			}
			total += f
			found++
		}
	}
	return time.Duration(total * float64(time.Second)), found == 2
}

// reportCPU adds the CPU time per event of each part of a run, keyed
// <prefix>.cpu.<part>, and their total; then each part of breakdown (a
// share of a part already counted, such as one client's Postgres
// backends), outside the total.
func (e *env) reportCPU(prefix, scenario, what string, events int, u usage, order, breakdown []string) {
	if events == 0 {
		return
	}
	perEvent := func(part string, d time.Duration) {
		e.report.add(Figure{Key: prefix + ".cpu." + part, Scenario: scenario,
			Name: fmt.Sprintf("  %s: CPU per event, %s", what, part), Value: float64(d.Microseconds()) / float64(events),
			Unit: "µs/event", Note: fmt.Sprintf("%s of CPU for %d events; %s", d.Round(time.Millisecond), events, cpuNote(part))})
	}
	var total time.Duration
	for _, part := range order {
		if d, ok := u.cpu[part]; ok {
			total += d
			perEvent(part, d)
		}
	}
	e.report.add(Figure{Key: prefix + ".cpu.total", Scenario: scenario,
		Name: fmt.Sprintf("  %s: CPU per event, all parts", what), Value: float64(total.Microseconds()) / float64(events),
		Unit: "µs/event", Note: fmt.Sprintf("%s of CPU in all for %d events: %.2f cores busy per 1,000 events/s",
			total.Round(time.Millisecond), events, total.Seconds()/float64(events)*1000)})
	for _, part := range breakdown {
		if d, ok := u.cpu[part]; ok {
			perEvent(part, d)
		}
	}
	if u.wal >= 0 {
		e.report.add(Figure{Key: prefix + ".wal", Scenario: scenario, Name: fmt.Sprintf("  %s: WAL per event", what),
			Value: float64(u.wal) / float64(events), Unit: "bytes/event",
			Note: fmt.Sprintf("%.1f MB of WAL for %d events (the whole server's: on a shared server, others' writes too)",
				float64(u.wal)/1e6, events)})
	}
}

func cpuNote(part string) string {
	switch part {
	case cpuBench:
		return "the bench process: writers and receiver (and, without -worker-bin, the relay and worker)"
	case cpuPostgres:
		return "every process of the Postgres server: on a shared server, others' work too"
	case cpuRedis:
		return "the Redis server (INFO cpu): on a shared server, others' work too"
	}
	if strings.HasPrefix(part, cpuPostgres+"[") {
		return "the Postgres backends of the bench database's connections of that application_name (part of postgres)"
	}
	return "the child process " + part
}
