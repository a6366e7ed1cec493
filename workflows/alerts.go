package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// alertSender delivers queued alerts one at a time in a coroutine of its
// own, so a slow webhook never holds up a timer or a signal. The queue is
// part of the workflow's state and crosses continue-as-new.
type alertSender struct {
	queue *[]Alert
	busy  bool
}

func startAlertSender(ctx workflow.Context, queue *[]Alert) *alertSender {
	s := &alertSender{queue: queue}
	workflow.Go(ctx, func(ctx workflow.Context) {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: 2 * time.Second,
				MaximumInterval: time.Minute,
				MaximumAttempts: 10,
			},
		})
		for {
			if err := workflow.Await(ctx, func() bool { return len(*s.queue) > 0 }); err != nil {
				return
			}
			s.busy = true
			alert := (*s.queue)[0]
			if err := workflow.ExecuteActivity(actx, ActivityNotify, alert).Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Error("Alert not delivered after retries", "kind", alert.Kind, "error", err)
			}
			*s.queue = slices.Delete(*s.queue, 0, 1)
			s.busy = false
		}
	})
	return s
}

// drained is true when everything queued has been delivered or given up.
func (s *alertSender) drained() bool { return !s.busy && len(*s.queue) == 0 }
