package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// runMemory puts MemoryPending deliveries on the stream, runs a worker on
// them until they are all delivered or MemoryDuration passes, and reports
// the worker's peak RSS (VmHWM). With Config.Binary the worker is a
// child process (`hookrelay worker`); otherwise it runs in this process,
// whose peak is reset first and which also holds the receiver and the
// harness (the baseline before the worker starts is in the note).
func (e *env) runMemory(ctx context.Context) error {
	s := e.cfg.Sizes
	fx, err := e.fixture(ctx)
	if err != nil {
		return err
	}
	defer fx.rcv.close()
	rcv, h, key, group := fx.rcv, fx.hook, fx.key, fx.group
	if err := e.seedDeliveries(ctx, s.MemoryPending, key, h); err != nil {
		return err
	}
	var peak, baseline int64
	var mode string
	if e.cfg.Binary != "" {
		mode = "child process " + e.cfg.Binary + " worker"
		peak, err = e.childPeak(ctx, key, group)
	} else {
		mode = "in-process (worker + receiver + harness)"
		peak, baseline, err = e.inProcessPeak(ctx, key, group)
	}
	if err != nil {
		return err
	}
	requests, _ := rcv.counts()
	if requests == 0 {
		return errors.New("the worker delivered nothing")
	}
	mb := float64(peak) / (1 << 20)
	note := fmt.Sprintf("%s; %d pending, %d delivered while measured", mode, s.MemoryPending, requests)
	if baseline > 0 {
		note += fmt.Sprintf("; %.0f MB before the worker started", float64(baseline)/(1<<20))
	}
	e.report.add(Figure{Key: "memory.peak_rss", Scenario: ScenarioMemory, Name: "worker peak RSS (VmHWM)", Value: mb,
		Unit: "MB", Goal: "≤ 100 MB", Ratio: mb / 100, RatioOf: "goal", Verdict: verdict(mb <= 100), Note: note})
	return nil
}

// runUntilDrained waits until key is empty or MemoryDuration passes.
func (e *env) runUntilDrained(ctx context.Context, key string) error {
	err := e.waitStreamEmpty(ctx, key, e.cfg.Sizes.MemoryDuration)
	if errors.Is(err, errTimeout) {
		return nil // measured for MemoryDuration with deliveries still pending
	}
	return err
}

func (e *env) inProcessPeak(ctx context.Context, key, group string) (peak, baseline int64, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	// Writing 5 to clear_refs resets the peak RSS to the current RSS.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, 0, fmt.Errorf("reset peak RSS: %w", err)
	}
	if baseline, _, err = procMemory(os.Getpid()); err != nil {
		return 0, 0, err
	}
	w, err := e.startWorker(ctx, key, group, nil)
	if err != nil {
		return 0, 0, err
	}
	err = e.runUntilDrained(ctx, key)
	_, peak, perr := procMemory(os.Getpid())
	if serr := w.stop(ctx); err == nil {
		err = serr
	}
	return peak, baseline, errors.Join(err, perr)
}

func (e *env) childPeak(ctx context.Context, key, group string) (int64, error) {
	c, err := e.startChild(ctx, "worker", key, group,
		"HOOKRELAY_WORKER_CONCURRENCY="+strconv.Itoa(e.cfg.Sizes.Concurrency))
	if err != nil {
		return 0, err
	}
	err = e.runUntilDrained(ctx, key)
	_, peak, perr := procMemory(c.pid())
	if serr := c.stop(); err == nil && perr == nil {
		err = serr
	}
	if perr != nil {
		return 0, fmt.Errorf("%w (worker stderr: %s)", perr, c.tail())
	}
	return peak, err
}

// procMemory reads a process's current and peak resident set size, in bytes.
func procMemory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s of process %d: %w", name, pid, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if hwm == 0 {
		return 0, 0, fmt.Errorf("process %d reports no VmHWM", pid)
	}
	return rss, hwm, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], " | ")
}
