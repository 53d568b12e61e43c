package bench

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// riverSettings returns the River baseline's settings for this run: with
// Sizes.RiverSweep, the fastest of the sweep (run once, by the first
// scenario that needs River); otherwise the tuned settings of Sizes.
func (e *env) riverSettings(ctx context.Context) (riverSettings, error) {
	if !e.cfg.Sizes.RiverSweep || e.riverSwept {
		return e.river, nil
	}
	best, err := e.sweepRiver(ctx)
	if err != nil {
		return riverSettings{}, fmt.Errorf("river sweep: %w", err)
	}
	e.river, e.riverSwept = best, true
	return best, nil
}

// sweepRiver runs the River worker stage on a backlog of RiverSweepJobs jobs
// at every MaxWorkers × FetchCooldown of the grid, reports each rate and the
// winner, and returns the winner's settings. It leaves the bench tables
// empty, as a scenario finds them.
func (e *env) sweepRiver(ctx context.Context) (riverSettings, error) {
	s := e.cfg.Sizes
	fx, err := e.fixture(ctx)
	if err != nil {
		return riverSettings{}, err
	}
	defer fx.rcv.close()
	var (
		best     riverSettings
		bestRate float64
		tried    []string
	)
	start := time.Now()
	for _, workers := range s.RiverSweepMaxWorkers {
		for _, cooldown := range s.RiverSweepCooldowns {
			rs := riverSettings{MaxWorkers: workers, FetchCooldown: cooldown, FetchPoll: s.RiverFetchPoll}
			if _, err := e.pool.Exec(ctx, `TRUNCATE hookrelay.river_job, bench.river_attempts`); err != nil {
				return riverSettings{}, fmt.Errorf("empty baseline tables: %w", err)
			}
			fx.rcv.reset()
			rate, note, err := e.riverBacklog(ctx, fx.rcv, fx.hook, s.RiverSweepJobs, rs)
			if err != nil {
				return riverSettings{}, fmt.Errorf("%s: %w", rs, err)
			}
			e.log.Info("bench: river sweep", "max_workers", workers, "fetch_cooldown", cooldown, "deliveries_per_s", int(rate))
			e.report.add(Figure{Key: fmt.Sprintf("river.sweep.w%d_c%s", workers, cooldown), Scenario: ScenarioRiver,
				Name: fmt.Sprintf("River sweep: %d workers, cooldown %s", workers, cooldown), Value: rate,
				Unit: "deliveries/s", Note: note})
			tried = append(tried, fmt.Sprintf("%d/%s", workers, cooldown))
			if rate > bestRate {
				best, bestRate = rs, rate
			}
		}
	}
	e.report.add(Figure{Key: "river.sweep.best", Scenario: ScenarioRiver, Name: "River sweep winner, deliveries/s",
		Value: bestRate, Unit: "deliveries/s",
		Note: fmt.Sprintf("won: %s (every River figure of this run uses it); %d jobs each over workers/cooldown %s in %s",
			best, s.RiverSweepJobs, strings.Join(tried, " "), time.Since(start).Round(time.Second))})
	return best, e.reset(ctx)
}
