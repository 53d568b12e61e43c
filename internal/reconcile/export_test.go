package reconcile

// AfterMarkerCheck sets a function run right after each run has checked
// the marker (tests only).
func (w *Worker) AfterMarkerCheck(f func()) { w.afterCheck = f }
