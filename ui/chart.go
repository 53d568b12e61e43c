package ui

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// Chart geometry, in the SVG's own units; the SVG scales to its box.
const (
	chartWidth  = 720.0
	chartHeight = 160.0
)

// chartOutcomes are the stacked outcomes, bottom first, with their CSS class.
var chartOutcomes = []string{"delivered", "failed", "skipped", "pending"}

// chart draws the series as stacked bars, deliveries per minute by outcome,
// with a title on each bar for hover and a text alternative. It writes only
// numbers, times and fixed words, so the markup needs no escaping.
func chart(st stats) template.HTML {
	n := len(st.Series)
	if n == 0 {
		return ""
	}
	perMinute := 60 / float64(st.BucketSeconds)
	top := 0.0
	for _, b := range st.Series {
		top = max(top, float64(b.Delivered+b.Failed+b.Skipped+b.Pending)*perMinute)
	}
	if top == 0 {
		top = 1
	}
	w := chartWidth / float64(n)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %.0f %.0f" preserveAspectRatio="none" role="img" aria-label="Deliveries per minute by outcome, %s to %s UTC, at most %.1f per minute">`,
		chartWidth, chartHeight, st.Since.UTC().Format("2006-01-02 15:04"), st.Until.UTC().Format("15:04"), top)
	for i, b := range st.Series {
		counts := map[string]int{"delivered": b.Delivered, "failed": b.Failed, "skipped": b.Skipped, "pending": b.Pending}
		y := chartHeight
		fmt.Fprintf(&sb, `<g><title>%s UTC: %d delivered, %d failed, %d skipped, %d pending</title>`,
			b.Start.UTC().Format(time.DateTime), b.Delivered, b.Failed, b.Skipped, b.Pending)
		fmt.Fprintf(&sb, `<rect class="bar-bg" x="%.2f" y="0" width="%.2f" height="%.0f"/>`, float64(i)*w, w, chartHeight)
		for _, o := range chartOutcomes {
			h := float64(counts[o]) * perMinute / top * chartHeight
			if h == 0 {
				continue
			}
			y -= h
			fmt.Fprintf(&sb, `<rect class="bar-%s" x="%.2f" y="%.2f" width="%.2f" height="%.2f"/>`, o, float64(i)*w+w*0.1, y, w*0.8, h)
		}
		sb.WriteString(`</g>`)
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}
