package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Verdicts of a figure that has a goal.
const (
	Met    = "met"
	Missed = "missed"
)

// Figure is one measured number.
type Figure struct {
	Key      string  `json:"key"` // stable id, e.g. "deliver.throughput"
	Scenario string  `json:"scenario"`
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Goal     string  `json:"goal,omitempty"`
	// Ratio compares the figure with RatioOf (e.g. the plain-row variant).
	Ratio   float64 `json:"ratio,omitempty"`
	RatioOf string  `json:"ratio_of,omitempty"`
	Verdict string  `json:"verdict,omitempty"` // Met, Missed, or empty without a goal
	Note    string  `json:"note,omitempty"`
}

// Machine says where the figures were taken.
type Machine struct {
	GOOS              string `json:"goos"`
	GOARCH            string `json:"goarch"`
	NumCPU            int    `json:"num_cpu"`
	GOMAXPROCS        int    `json:"gomaxprocs"`
	GoVersion         string `json:"go_version"`
	Postgres          string `json:"postgres"`
	SynchronousCommit string `json:"synchronous_commit"`
	Fsync             string `json:"fsync"`
	SharedBuffers     string `json:"shared_buffers"`
	Redis             string `json:"redis"`
}

// Report is the outcome of a run.
type Report struct {
	Started   time.Time `json:"started"`
	Duration  string    `json:"duration"`
	Machine   Machine   `json:"machine"`
	Sizes     Sizes     `json:"sizes"`
	Scenarios []string  `json:"scenarios"`
	Figures   []Figure  `json:"figures"`
}

// Figure returns the figure with key, if the run produced it.
func (r *Report) Figure(key string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Key == key {
			return f, true
		}
	}
	return Figure{}, false
}

func (r *Report) add(f Figure) { r.Figures = append(r.Figures, f) }

// compare adds the hookrelay ÷ River figures when both sides were measured
// in the run; river says which River settings were used.
func (r *Report) compare(river string) {
	pairs := []struct {
		key, scenario, name, hook, river, goal string
		ok                                     func(hook, ratio float64) bool
	}{
		{"deliver.ratio.river", ScenarioDeliver, "worker ÷ River worker stage, deliveries/s", "deliver.throughput", "river.throughput",
			"≥ 2× River tuned", func(_, ratio float64) bool { return ratio >= 2 }},
		{"latency.ratio.river_p50", ScenarioLatency, "latency p50 ÷ River p50", "latency.p50", "river.p50",
			"≤ 2 ms and ≤ 0.5× River p50", func(h, ratio float64) bool { return h <= 2 && ratio <= 0.5 }},
		{"latency.ratio.river_p99", ScenarioLatency, "latency p99 ÷ River p99", "latency.p99", "river.p99",
			"≤ 10 ms and < River p99", func(h, ratio float64) bool { return h <= 10 && ratio < 1 }},
	}
	for _, p := range pairs {
		h, ok1 := r.Figure(p.hook)
		b, ok2 := r.Figure(p.river)
		if !ok1 || !ok2 || b.Value == 0 {
			continue
		}
		ratio := h.Value / b.Value
		r.add(Figure{Key: p.key, Scenario: p.scenario, Name: p.name, Value: ratio, Unit: "×", Goal: p.goal,
			Verdict: verdict(p.ok(h.Value, ratio)), Note: fmt.Sprintf("%s %s ÷ %s %s, same run; %s",
				p.hook, formatValue(h.Value, h.Unit), p.river, formatValue(b.Value, b.Unit), river)})
	}
}

func verdict(ok bool) string {
	if ok {
		return Met
	}
	return Missed
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write bench report: %w", err)
	}
	return nil
}

// WriteTable writes the figures as an aligned table: scenario, figure, value,
// goal, ratio and verdict.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "hookrelay bench · %s · %d CPU (GOMAXPROCS %d) · %s · Postgres %s (synchronous_commit=%s, fsync=%s) · Redis %s · took %s\n\n",
		r.Started.Format(time.RFC3339), m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.Postgres, m.SynchronousCommit, m.Fsync, m.Redis, r.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVALUE\tGOAL\tRATIO\tVERDICT\tNOTE")
	for _, f := range r.Figures {
		ratio := ""
		if f.Ratio != 0 {
			ratio = strconv.FormatFloat(f.Ratio, 'f', 2, 64)
			if f.RatioOf != "" {
				ratio += " of " + f.RatioOf
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Scenario, f.Name, formatValue(f.Value, f.Unit),
			f.Goal, ratio, f.Verdict, f.Note)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write bench table: %w", err)
	}
	return nil
}

// formatValue prints large numbers with thousands separators and small ones
// with two decimals.
func formatValue(v float64, unit string) string {
	var s string
	switch {
	case math.Abs(v) >= 1000:
		s = thousands(int64(math.Round(v)))
	case math.Abs(v) >= 100:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	default:
		s = strconv.FormatFloat(v, 'f', 2, 64)
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
