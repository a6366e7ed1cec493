package vault_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/activities"
	"recoveryvault/workflows/protocol"
	. "recoveryvault/workflows/vault"
)

// TestABurstOfDeletesIsHeldAfterTheThreshold: ransomware's burst. The
// guard lets its threshold of deletes through within the window, alerts,
// and holds every further one until the hold is cleared; then the held
// ones go through at their next try.
func (s *VaultSuite) TestABurstOfDeletesIsHeldAfterTheThreshold() {
	answers := make([]protocol.VaultAnswer, 12)
	errs := make([]error, 12)
	var cleared error
	var again protocol.VaultAnswer
	var errAgain error
	s.holding = 12
	s.at(time.Minute, func() {
		for i := range 12 {
			s.itemDelete(fmt.Sprintf("d-%d", i), protocol.ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", i), RequestedBy: "mallory"}, &answers[i], &errs[i])
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
		s.answer(UpdateClearMassDeleteHold, protocol.Request{RequestedBy: "alice", Reason: "planned decommissioning"}, nil, &cleared)
	})
	released := make([]protocol.VaultAnswer, 12)
	errsReleased := make([]error, 12)
	fresh := make([]protocol.VaultAnswer, 11)
	errsFresh := make([]error, 11)
	var receivedBefore time.Time
	s.at(90*time.Second, func() { receivedBefore = s.env.Now() })
	s.at(3*time.Minute, func() {
		s.Require().NoError(cleared)
		s.True(s.status().MassDeleteGuard.HeldSince.IsZero())
		// Every delete received before the clear is let through, however
		// many: the clear released them. Deletes received since count.
		for i := range 12 {
			s.itemDelete(fmt.Sprintf("released-%d", i), protocol.ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", i), RequestedBy: "mallory", ReceivedAt: receivedBefore},
				&released[i], &errsReleased[i])
		}
		for i := range 11 {
			s.itemDelete(fmt.Sprintf("fresh-%d", i), protocol.ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", 20+i), RequestedBy: "mallory", ReceivedAt: s.env.Now()},
				&fresh[i], &errsFresh[i])
		}
		s.itemDelete("again", protocol.ItemDeleteRequest{ItemID: "vm10", RequestedBy: "mallory"}, &again, &errAgain)
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
		s.answer(UpdateSetMassDeleteGuard, protocol.SetMassDeleteGuardRequest{Threshold: 5, RequestedBy: "alice"}, &tighter, &errTighter)
		s.answer(UpdateSetMassDeleteGuard, protocol.SetMassDeleteGuardRequest{Enabled: new(bool), RequestedBy: "alice"}, &off, &errOff)
		s.answer(UpdateClearMassDeleteHold, protocol.Request{RequestedBy: "alice"}, nil, &errClear)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errTighter)
		s.Nil(tighter.Request, "tightening needs no approval")
		s.Require().NoError(errOff)
		s.Require().NotNil(off.Request)
		s.Equal(protocol.RequestPending, off.Request.State)
		st := s.status()
		s.True(st.MassDeleteGuard.Enabled, "nothing changes before approval")
		s.Equal(5, st.MassDeleteGuard.Threshold)
		s.ErrorContains(errClear, "vault vault1 holds no deletes")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestUnderMuaABurstOpensRequestsAndAlertsOnce: with multi-user
// authorization on, each delete of a burst waits for an approver (up to
// the requester's bound of pending requests, then a rule refuses); the
// guard alerts once; an approval is confirmed once, whatever the burst.
func (s *VaultSuite) TestUnderMuaABurstOpensRequestsAndAlertsOnce() {
	var a *activities.Activities
	s.env.OnActivity(a.Signal, mock.Anything, mock.Anything).Return(nil)
	s.holding = 40
	answers := make([]protocol.VaultAnswer, 14)
	errs := make([]error, 14)
	var errApprove, errConfirm, errTwice error
	var confirmed protocol.VaultAnswer
	s.at(time.Minute, func() {
		s.enableMua("24h")
		for i := range 14 {
			s.itemDelete(fmt.Sprintf("d-%d", i), protocol.ItemDeleteRequest{ItemID: fmt.Sprintf("vm%d", i), RequestedBy: "mallory"}, &answers[i], &errs[i])
		}
	})
	pending := -1
	s.at(2*time.Minute, func() {
		waiting := 0
		for i := range 14 {
			if errs[i] != nil {
				s.ErrorContains(errs[i], "mallory has 10 requests pending approval", "a rule, not the load, refuses delete %d", i)
				continue
			}
			s.Require().NotNil(answers[i].Pending, "delete %d waits for approval", i)
			waiting++
			pending = i
		}
		s.Equal(10, waiting)
		massAlerts := 0
		for _, al := range s.alerts {
			if al.Kind == AlertMassDelete {
				massAlerts++
			}
		}
		s.Equal(1, massAlerts, "the guard alerts once for the burst")
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: answers[pending].Pending.RequestID, RequestedBy: "bob"}, nil, &errApprove)
	})
	s.at(3*time.Minute, func() {
		s.Require().NoError(errApprove)
		id, item := answers[pending].Pending.RequestID, fmt.Sprintf("vm%d", pending)
		s.itemDelete("confirm", protocol.ItemDeleteRequest{ItemID: item, RequestID: id}, &confirmed, &errConfirm)
		s.itemDelete("twice", protocol.ItemDeleteRequest{ItemID: item, RequestID: id}, nil, &errTwice)
	})
	s.at(4*time.Minute, func() {
		s.Require().NoError(errConfirm)
		s.Equal("mallory", confirmed.RequestedBy)
		s.Empty(confirmed.Held, "an approved delete is not held: its approver released it")
		s.ErrorContains(errTwice, "has been carried out already")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestAHeldDeleteIsAnsweredFromThePublishedHoldOnlyWhileItStillHoldsIt:
// the hold a vault publishes may keep a held delete waiting without asking
// the vault, never let one through.
func TestAHeldDeleteIsAnsweredFromThePublishedHoldOnlyWhileItStillHoldsIt(t *testing.T) {
	heldSince := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	cleared := heldSince.Add(-time.Hour)
	holding := protocol.DeleteSettings{MassDeleteHold: protocol.Hold{HeldSince: heldSince, ReleasedUntil: cleared}}
	received := heldSince.Add(time.Minute)
	cases := map[string]struct {
		vault protocol.DeleteSettings
		req   protocol.ItemDeleteRequest
		held  bool
	}{
		"held, received after the last clear":      {holding, protocol.ItemDeleteRequest{ItemID: "vm1", ReceivedAt: received}, true},
		"the vault holds nothing":                  {protocol.DeleteSettings{MassDeleteHold: protocol.Hold{ReleasedUntil: cleared}}, protocol.ItemDeleteRequest{ItemID: "vm1", ReceivedAt: received}, false},
		"received before the last clear":           {holding, protocol.ItemDeleteRequest{ItemID: "vm1", ReceivedAt: cleared.Add(-time.Second)}, false},
		"received at the last clear":               {holding, protocol.ItemDeleteRequest{ItemID: "vm1", ReceivedAt: cleared}, false},
		"an approved delete is the vault's to say": {holding, protocol.ItemDeleteRequest{ItemID: "vm1", ReceivedAt: received, RequestID: "r-1"}, false},
		"signed, fresh": {holding, protocol.ItemDeleteRequest{ItemID: "vm1", ReceivedAt: received,
			Input: json.RawMessage(`{"signature":"-----BEGIN SSH SIGNATURE-----","signedAt":"2026-12-03T10:00:30Z"}`)}, true},
		"signed, stale by now: the vault refuses it": {holding, protocol.ItemDeleteRequest{ItemID: "vm1", ReceivedAt: received,
			Input: json.RawMessage(`{"signature":"-----BEGIN SSH SIGNATURE-----","signedAt":"2026-12-03T09:50:59Z"}`)}, false},
		"signed at no time the vault can read": {holding, protocol.ItemDeleteRequest{ItemID: "vm1", ReceivedAt: received,
			Input: json.RawMessage(`{"signature":"-----BEGIN SSH SIGNATURE-----","signedAt":"yesterday"}`)}, false},
		"under multi-user authorization": {protocol.DeleteSettings{MultiUserAuthorization: true, MassDeleteHold: protocol.Hold{HeldSince: heldSince}}, protocol.ItemDeleteRequest{ItemID: "vm1", ReceivedAt: received}, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			why := c.vault.StillHeld("vault1", c.req, received.Add(time.Minute))
			if !c.held {
				assert.Empty(t, why)
				return
			}
			assert.Equal(t, "vault vault1 holds deletes since 2026-12-03T10:00:00Z: its mass-delete guard let its threshold through; the delete waits until the hold is cleared (clearMassDeleteHold)", why)
		})
	}
}
