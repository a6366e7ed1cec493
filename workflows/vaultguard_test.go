package workflows_test

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	. "recoveryvault/workflows"
)

// TestABurstOfDeletesIsHeldAfterTheThreshold: ransomware's burst. The
// guard lets its threshold of deletes through within the window, alerts,
// and holds every further one until the hold is cleared; then the held
// ones go through at their next try.
func (s *VaultSuite) TestABurstOfDeletesIsHeldAfterTheThreshold() {
	answers := make([]VaultAnswer, 12)
	errs := make([]error, 12)
	var cleared error
	var again VaultAnswer
	var errAgain error
	s.holding = 12
	s.at(time.Minute, func() {
		for i := range 12 {
			s.itemDelete(fmt.Sprintf("d-%d", i), ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", i), RequestedBy: "mallory"}, &answers[i], &errs[i])
		}
	})
	s.at(2*time.Minute, func() {
		for i := range 12 {
			s.Require().NoError(errs[i], i)
			if i < 10 {
				s.Empty(answers[i].Held, "delete %d is within the threshold", i)
				s.Equal(14*day, answers[i].Window)
			} else {
				s.Contains(answers[i].Held, "vault vault1 holds deletes since", "delete %d is held", i)
				s.Zero(answers[i].Window)
			}
		}
		st := s.status()
		s.Equal(10, st.MassDeleteGuard.Threshold, "the larger of 10 and 5% of 12 items")
		s.Equal(1, s.counted, "the vault counted its items once for the burst")
		s.False(st.MassDeleteGuard.HeldSince.IsZero())
		massAlerts := 0
		for _, a := range s.alerts {
			if a.Kind == AlertMassDelete {
				massAlerts++
			}
		}
		s.Equal(1, massAlerts, "one alert for the burst")
		s.answer(UpdateClearMassDeleteHold, Request{RequestedBy: "alice", Reason: "planned decommissioning"}, nil, &cleared)
	})
	released := make([]VaultAnswer, 12)
	errsReleased := make([]error, 12)
	fresh := make([]VaultAnswer, 11)
	errsFresh := make([]error, 11)
	var receivedBefore time.Time
	s.at(90*time.Second, func() { receivedBefore = s.env.Now() })
	s.at(3*time.Minute, func() {
		s.Require().NoError(cleared)
		s.True(s.status().MassDeleteGuard.HeldSince.IsZero())
		// Every delete received before the clear is let through, however
		// many: the clear released them. Deletes received since count.
		for i := range 12 {
			s.itemDelete(fmt.Sprintf("released-%d", i), ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", i), RequestedBy: "mallory", ReceivedAt: receivedBefore},
				&released[i], &errsReleased[i])
		}
		for i := range 11 {
			s.itemDelete(fmt.Sprintf("fresh-%d", i), ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", 20+i), RequestedBy: "mallory", ReceivedAt: s.env.Now()},
				&fresh[i], &errsFresh[i])
		}
		s.itemDelete("again", ItemDeleteRequest{ItemID: "vm10", RequestedBy: "mallory"}, &again, &errAgain)
	})
	s.at(4*time.Minute, func() {
		for i := range 12 {
			s.Require().NoError(errsReleased[i])
			s.Empty(released[i].Held, "held delete %d goes through once the hold is cleared", i)
			s.Equal(14*day, released[i].Window)
		}
		for i := range 11 {
			s.Require().NoError(errsFresh[i])
			if i < 10 {
				s.Empty(fresh[i].Held, "new delete %d is within the threshold, counted afresh", i)
			} else {
				s.Contains(fresh[i].Held, "holds deletes", "the guard holds a new burst again")
			}
		}
		s.Require().NoError(errAgain)
		s.Contains(again.Held, "holds deletes")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestLooseningTheGuardIsCritical: turning it off or raising its threshold
// waits for approval under multi-user authorization; tightening does not.
func (s *VaultSuite) TestLooseningTheGuardIsCritical() {
	var tighter, off VaultStatus
	var errTighter, errOff, errClear error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.answer(UpdateSetMassDeleteGuard, SetMassDeleteGuardRequest{Threshold: 5, RequestedBy: "alice"}, &tighter, &errTighter)
		s.answer(UpdateSetMassDeleteGuard, SetMassDeleteGuardRequest{Enabled: new(bool), RequestedBy: "alice"}, &off, &errOff)
		s.answer(UpdateClearMassDeleteHold, Request{RequestedBy: "alice"}, nil, &errClear)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errTighter)
		s.Nil(tighter.Request, "tightening needs no approval")
		s.Require().NoError(errOff)
		s.Require().NotNil(off.Request)
		s.Equal(RequestPending, off.Request.State)
		st := s.status()
		s.True(st.MassDeleteGuard.Enabled, "nothing changes before approval")
		s.Equal(5, st.MassDeleteGuard.Threshold)
		s.ErrorContains(errClear, "vault vault1 holds no deletes")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}
