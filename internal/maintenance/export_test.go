package maintenance

// AfterMarkerCheck sets a function run right after each run has checked
// the marker (tests only).
func (w *Reconciler) AfterMarkerCheck(f func()) { w.afterCheck = f }
