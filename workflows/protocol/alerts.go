package protocol

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// alertSender delivers queued alerts one at a time in a coroutine of its
// own, so a slow webhook never holds up a timer or a signal. The queue is
// part of the workflow's state and crosses continue-as-new.
type AlertSender struct {
	queue *[]Alert
	busy  bool
}

func StartAlertSender(ctx workflow.Context, queue *[]Alert) *AlertSender {
	s := &AlertSender{queue: queue}
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

// maxQueuedAlerts bounds the alerts waiting for delivery, which cross
// continue-as-new: a burst of refused requests, or a webhook that is down,
// must not grow the vault's state with every alert.
const maxQueuedAlerts = 100

// queueAlert queues an alert for delivery. Once maxQueuedAlerts wait, it is
// folded into the last waiting alert of its kind (counted in its More; each
// refused request stays in the vault's event history), and queued only if
// none of its kind waits:
// the queue never holds more than maxQueuedAlerts plus one of each kind.
// The first alert is never changed: it may be on its way.
func QueueAlert(queue *[]Alert, a Alert) {
	a = a.Bounded()
	q := *queue
	if len(q) >= maxQueuedAlerts {
		for i := len(q) - 1; i >= 1; i-- {
			if q[i].Kind == a.Kind {
				q[i].More += 1 + a.More
				return
			}
		}
	}
	*queue = append(q, a)
}

// Drained is true when everything queued has been delivered or given up.
func (s *AlertSender) Drained() bool { return !s.busy && len(*s.queue) == 0 }
