package protocol

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// Timer is a durable timer kept at the one time it is armed for; one for
// another time is cancelled, never left to fire.
type Timer struct {
	future workflow.Future
	cancel workflow.CancelFunc
	at     time.Time
}

// Arm keeps the timer at at; zero is no timer.
func (t *Timer) Arm(ctx workflow.Context, at time.Time, summary string) {
	if t.future != nil && !t.at.Equal(at) {
		t.cancel()
		*t = Timer{}
	}
	if at.IsZero() || t.future != nil {
		return
	}
	t.at = at
	tctx, cancel := workflow.WithCancel(ctx)
	t.cancel = cancel
	if d := at.Sub(workflow.Now(ctx)); d > 0 {
		t.future = workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{Summary: summary})
		return
	}
	// NewTimer makes no timer for a time already due.
	f, set := workflow.NewFuture(tctx)
	set.Set(nil, nil)
	t.future = f
}

// Ready is true once the timer has fired or been cancelled.
func (t *Timer) Ready() bool { return t.future != nil && t.future.IsReady() }

// Take is true once for a timer that fired, and disarms it; a timer made
// ready by its cancellation is no time that passed.
func (t *Timer) Take(ctx workflow.Context) bool {
	if !t.Ready() {
		return false
	}
	fired := t.future.Get(ctx, nil) == nil
	*t = Timer{}
	return fired
}
