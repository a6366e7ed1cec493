package vault_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
	"recoveryvault/workflows/protocol"
	. "recoveryvault/workflows/vault"
)

// answer sends an update and keeps its result and error.
func (s *VaultSuite) answer(name string, arg any, got *VaultStatus, failed *error) {
	s.updates++
	s.env.UpdateWorkflow(name, name+string(rune('a'+s.updates)), &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { *failed = err },
		OnComplete: func(v any, err error) {
			*failed = err
			if st, ok := v.(VaultStatus); ok && got != nil {
				*got = st
			}
		},
	}, arg)
}

func (s *VaultSuite) enableMua(window string) {
	var err error
	s.answer(protocol.UpdateEnableMua, protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, ApprovalWindow: window, RequestedBy: "alice"}, nil, &err)
	s.Require().NoError(err, "enabling multi-user authorization is not itself critical")
}

func (s *VaultSuite) auditLines() []string {
	var lines []string
	for _, e := range s.status().Audit {
		lines = append(lines, e.Operation+"/"+e.RequestedBy+"/"+e.Outcome)
	}
	return lines
}

func (s *VaultSuite) TestDisablingSoftDeleteWaitsForAnotherApprover() {
	var pending, approved VaultStatus
	var errPending, errSelf, errStranger, errApproved error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.answer(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "alice", Reason: "cost"}, &pending, &errPending)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errPending)
		s.Require().NotNil(pending.Request)
		s.Equal("r-1", pending.Request.RequestID)
		s.Equal(protocol.RequestPending, pending.Request.State)
		s.Contains(pending.Request.Detail, "pending approval by bob until")
		s.Equal(protocol.SoftDeleteEnabled, s.status().SoftDelete.State, "a pending request changes nothing")
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "alice"}, nil, &errSelf)
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "mallory"}, nil, &errStranger)
	})
	s.at(3*time.Minute, func() {
		s.ErrorContains(errSelf, "alice requested r-1 and cannot approve it")
		s.ErrorContains(errStranger, "mallory is not an approver")
		s.Equal(protocol.SoftDeleteEnabled, s.status().SoftDelete.State)
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}, &approved, &errApproved)
	})
	s.at(4*time.Minute, func() {
		s.Require().NoError(errApproved)
		s.Equal(protocol.RequestApproved, approved.Request.State)
		s.Equal("bob", approved.Request.DecidedBy)
		s.Equal(protocol.SoftDeleteDisabled, s.status().SoftDelete.State)
		s.Equal([]string{
			"enableMua/alice/accepted",
			"setSoftDelete/alice/pending approval",
			"approve/alice/rejected",
			"approve/mallory/rejected",
			"approve/bob/accepted",
			"setSoftDelete/alice/accepted",
		}, s.auditLines(), "every request, refusal and approval is in the audit")
		last := s.status().Audit[5]
		s.Contains(last.Detail, "reason: cost; approved by bob (request r-1)")
		var kinds []string
		for _, a := range s.alerts {
			kinds = append(kinds, a.Kind+"/"+a.RequestedBy)
		}
		s.Equal([]string{
			protocol.AlertApprovalRequested + "/alice",
			protocol.AlertCriticalRejected + "/alice",
			protocol.AlertCriticalRejected + "/mallory",
		}, kinds)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

func (s *VaultSuite) TestUnapprovedRequestExpiresAfterTheWindow() {
	var errPending, errLate error
	var fired []string
	s.env.SetOnTimerFiredListener(func(id string) { fired = append(fired, id) })
	s.at(time.Minute, func() {
		s.enableMua("2h")
		s.answer(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "alice"}, nil, &errPending)
	})
	s.at(2*time.Hour, func() {
		s.Require().NoError(errPending)
		s.Equal(protocol.RequestPending, s.status().Requests[0].State, "still pending a minute before the window ends")
	})
	s.at(2*time.Hour+2*time.Minute, func() {
		st := s.status()
		s.Equal(protocol.RequestExpired, st.Requests[0].State)
		s.Equal("system", st.Requests[0].DecidedBy)
		s.Len(fired, 1, "a durable timer expired it")
		last := st.Audit[len(st.Audit)-1]
		s.Equal("expire/system/Expired", last.Operation+"/"+last.RequestedBy+"/"+last.Outcome)
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}, nil, &errLate)
	})
	s.at(3*time.Hour, func() {
		s.ErrorContains(errLate, "request r-1 is Expired, not pending")
		s.Equal(protocol.SoftDeleteEnabled, s.status().SoftDelete.State)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// The vault's default is 14 days; lengthening is not critical, shortening
// back is, and a rejection leaves the longer retention.
func (s *VaultSuite) TestRejectedRequestChangesNothing() {
	var errLonger, errShorter, errReject, errApprove error
	s.at(time.Minute, func() {
		s.enableMua("")
		s.answer(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{RetentionDays: 90, RequestedBy: "alice"}, nil, &errLonger)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errLonger)
		s.Equal(90, s.status().SoftDelete.RetentionDays, "a longer retention needs no approval")
		s.answer(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{RetentionDays: 14, RequestedBy: "mallory"}, nil, &errShorter)
	})
	s.at(3*time.Minute, func() {
		s.Require().NoError(errShorter)
		s.answer(protocol.UpdateReject, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob", Reason: "no ticket"}, nil, &errReject)
	})
	s.at(4*time.Minute, func() {
		s.Require().NoError(errReject)
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "alice"}, nil, &errApprove)
	})
	s.at(5*time.Minute, func() {
		s.ErrorContains(errApprove, "is Rejected, not pending")
		st := s.status()
		s.Equal(90, st.SoftDelete.RetentionDays)
		s.Equal(protocol.RequestRejected, st.Requests[0].State)
		s.Equal("rejected by bob; reason: no ticket", st.Requests[0].Detail)
		s.Equal(24*time.Hour, st.Requests[0].ExpiresAt.Sub(st.Requests[0].CreatedAt), "the default window is 24h")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

func (s *VaultSuite) TestTurningMuaOffNeedsApprovalAndClosesWhatWaits() {
	no := false
	var errOff, errOther, errApprove error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.answer(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "mallory"}, nil, &errOther)
		s.answer(protocol.UpdateEnableMua, protocol.EnableMuaRequest{Enabled: &no, RequestedBy: "alice"}, nil, &errOff)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errOff)
		s.Require().NoError(errOther)
		s.True(s.status().MultiUserAuthorization.Enabled, "turning it off waits for approval")
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-2", RequestedBy: "bob"}, nil, &errApprove)
	})
	s.at(3*time.Minute, func() {
		s.Require().NoError(errApprove)
		st := s.status()
		s.False(st.MultiUserAuthorization.Enabled)
		s.Equal(protocol.RequestRejected, requestByID(st, "r-1").State, "nobody is left to approve mallory's request")
		s.Equal(protocol.RequestApproved, requestByID(st, "r-2").State)
		s.Equal(protocol.SoftDeleteEnabled, st.SoftDelete.State)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

func (s *VaultSuite) TestDeleteVaultUnderMuaWaitsForApproval() {
	var pending VaultStatus
	var errPending, errApprove error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.answer(protocol.UpdateDeleteVault, protocol.Request{RequestedBy: "alice"}, &pending, &errPending)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errPending)
		s.Equal(protocol.RequestPending, pending.Request.State)
		s.False(s.status().Deleted)
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: pending.Request.RequestID, RequestedBy: "bob"}, nil, &errApprove)
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.Require().NoError(s.env.GetWorkflowError())
	s.NoError(errApprove)
	var final VaultStatus
	s.Require().NoError(s.env.GetWorkflowResult(&final))
	s.True(final.Deleted, "the approval deleted the vault and its workflow completed")
}

// itemDelete sends an item's delete to the vault as the item's activity
// does, and keeps the answer.
func (s *VaultSuite) itemDelete(id string, req protocol.ItemDeleteRequest, answer *protocol.VaultAnswer, failed *error) {
	s.asking = append(s.asking, id)
	s.sendItemDelete(itemRun+"/"+id, req, answer, failed)
}

// sendItemDelete sends itemDelete under update ID id, as anyone can.
func (s *VaultSuite) sendItemDelete(id string, req protocol.ItemDeleteRequest, answer *protocol.VaultAnswer, failed *error) {
	if req.At.IsZero() {
		req.At = s.env.Now()
	}
	s.env.UpdateWorkflow(protocol.UpdateItemDelete, id, &testsuite.TestUpdateCallback{
		OnAccept: func() {}, OnReject: func(err error) { *failed = err },
		OnComplete: func(v any, err error) {
			*failed = err
			if a, ok := v.(protocol.VaultAnswer); ok && answer != nil {
				*answer = a
			}
		},
	}, req)
}

// TestAnItemDeleteGetsItsWindowAndIsRecorded: without multi-user
// authorization the vault answers the window (the longer of its own and
// the item's), records the item as soft-deleted with its deadline and
// hands over the alert.
func (s *VaultSuite) TestAnItemDeleteGetsItsWindowAndIsRecorded() {
	var answer protocol.VaultAnswer
	var err error
	var at time.Time
	s.at(time.Minute, func() {
		at = s.env.Now()
		s.itemDelete("d-1", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "mallory", Window: protocol.WindowInputs{ItemDays: 20}}, &answer, &err)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(err)
		s.Equal(20*day, answer.Window, "the item's own 20 days beat the vault's 14")
		s.False(answer.Disabled)
		s.Require().NotNil(answer.Alert)
		s.Equal(protocol.AlertSoftDeleted, answer.Alert.Kind)
		s.Equal("mallory", answer.Alert.RequestedBy)
		s.True(at.Add(20 * day).Equal(answer.Alert.PurgeTime))
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestApprovedItemDeleteIsSentToTheItemAndCountsOnce: the vault signals the
// item on approval; the item's delete that names the request is confirmed
// once, and the same approval again is refused.
func (s *VaultSuite) TestApprovedItemDeleteIsSentToTheItemAndCountsOnce() {
	var a *activities.Activities
	var sent []protocol.MessageInput
	s.env.OnActivity(a.Signal, mock.Anything, mock.Anything).Return(func(_ ctxT, in protocol.MessageInput) error {
		sent = append(sent, in)
		return nil
	})
	var pending, confirmed protocol.VaultAnswer
	var errRequest, errAgain, errApprove, errEarly, errConfirm, errTwice error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.itemDelete("item-delete-1", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "mallory"}, &pending, &errRequest)
		s.itemDelete("item-delete-2", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "mallory"}, nil, &errAgain)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errRequest)
		s.Require().NoError(errAgain)
		s.Require().NotNil(pending.Pending)
		s.Equal("r-1", pending.Pending.RequestID)
		s.Len(s.status().Requests, 1, "the same delete asked twice is one request")
		s.Empty(sent, "nothing is sent before approval")
		s.itemDelete("early", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "mallory", RequestID: "r-1"}, nil, &errEarly)
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}, nil, &errApprove)
	})
	s.at(3*time.Minute, func() {
		s.ErrorContains(errEarly, "request r-1 at vault vault1 is PendingApproval, not Approved")
		s.Require().NoError(errApprove)
		s.Require().Len(sent, 1)
		s.Equal(protocol.WorkflowID("vault1", "vm1"), sent[0].WorkflowID)
		s.Equal(protocol.SignalDeleteApproved, sent[0].Name)
		var approval protocol.DeleteApproval
		s.Require().NoError(json.Unmarshal(sent[0].Payload, &approval))
		s.Equal("r-1", approval.RequestID)
		s.itemDelete("confirm", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "anonymous", RequestID: "r-1"}, &confirmed, &errConfirm)
	})
	s.at(4*time.Minute, func() {
		s.Require().NoError(errConfirm)
		s.Equal("mallory", confirmed.RequestedBy, "the delete is the requester's")
		s.Equal("approved by bob (request r-1)", confirmed.Reason)
		s.Equal(14*day, confirmed.Window)
		s.itemDelete("twice", protocol.ItemDeleteRequest{ItemID: "vm1", RequestID: "r-1"}, nil, &errTwice)
	})
	s.at(5*time.Minute, func() {
		s.ErrorContains(errTwice, "request r-1 at vault vault1 has been carried out already")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

func (s *VaultSuite) TestRequestsAndTheirExpiryCrossContinueAsNew() {
	var errPending error
	var expires time.Time
	s.at(time.Minute, func() {
		s.enableMua("48h")
		s.answer(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "alice"}, nil, &errPending)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(errPending)
		expires = s.status().Requests[0].ExpiresAt
		s.env.SetContinueAsNewSuggested(true)
		s.nudge() // a task to notice it in
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	var can *workflow.ContinueAsNewError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &can)
	var next VaultInput
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	s.Require().NotNil(next.State)
	s.Require().Len(next.State.Requests, 1)
	s.Equal(protocol.RequestPending, next.State.Requests[0].State)
	s.True(next.State.Mua.Enabled)

	// The new run expires the request at its original time.
	startNew := s.env.Now()
	s.SetupTest()
	s.env.SetStartTime(startNew)
	s.env.SetContinuedExecutionRunID("previous-run")
	var expiredAt time.Time
	s.env.SetOnTimerFiredListener(func(string) { expiredAt = s.env.Now() })
	s.at(3*day, func() {
		st := s.status()
		s.Equal(protocol.RequestExpired, st.Requests[0].State)
		s.Equal(protocol.SoftDeleteEnabled, st.SoftDelete.State)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, next)
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
	s.Equal(expires, expiredAt.UTC(), "expired at the time set in the first run")
}

func requestByID(st VaultStatus, id string) protocol.MuaRequest {
	for _, r := range st.Requests {
		if r.RequestID == id {
			return r
		}
	}
	return protocol.MuaRequest{}
}

// TestTheApprovedRequestOutlivesAFloodOfDecidedOnes: an approver deciding
// a burst of requests must not trim away an approved delete whose item has
// yet to confirm it; decided requests go oldest decision first.
func (s *VaultSuite) TestTheApprovedRequestOutlivesAFloodOfDecidedOnes() {
	var a *activities.Activities
	s.env.OnActivity(a.Signal, mock.Anything, mock.Anything).Return(nil)
	var got VaultStatus
	var errApprove error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		var err error
		s.itemDelete("item-delete", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "alice"}, nil, &err)
	})
	s.at(2*time.Minute, func() {
		s.answer(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}, &got, &errApprove)
	})
	s.at(3*time.Minute, func() {
		s.Require().NoError(errApprove)
		s.Require().NotNil(got.Request)
		s.Equal(protocol.RequestApproved, got.Request.State)
		var err error
		for i := range MaxClosedRequests + 5 {
			by := fmt.Sprintf("x%d", i)
			s.answer(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: by}, nil, &err)
			s.answer(protocol.UpdateReject, protocol.DecisionRequest{RequestID: fmt.Sprintf("r-%d", i+2), RequestedBy: by}, nil, &err)
		}
	})
	s.at(4*time.Minute, func() {
		st := s.status()
		s.Len(st.Requests, MaxClosedRequests+1, "the last decided ones, and the approval its item has yet to carry out")
		s.Equal(protocol.RequestApproved, requestByID(st, "r-1").State, "still there for the item to find")
		var answer protocol.VaultAnswer
		var err error
		s.itemDelete("item-confirms", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "alice", RequestID: "r-1"}, &answer, &err)
		s.at(time.Minute, func() {
			s.Require().NoError(err, "the item carries out the approval it was told of")
			s.env.CancelWorkflow()
		})
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

func (s *VaultSuite) TestOneRequesterCannotFillTheQueue() {
	var errs [MaxPendingPerRequester + 1]error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		for i := range errs {
			s.answer(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{RetentionDays: 14, State: protocol.SoftDeleteDisabled, RequestedBy: "mallory"}, nil, &errs[i])
		}
	})
	s.at(2*time.Minute, func() {
		for _, err := range errs[:MaxPendingPerRequester] {
			s.NoError(err)
		}
		s.ErrorContains(errs[MaxPendingPerRequester], "mallory has 10 requests pending approval at vault vault1")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

func (s *VaultSuite) TestDeleteRequestsForItemsTheVaultDoesNotHoldAreRefused() {
	var err error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.itemDelete("item-delete", protocol.ItemDeleteRequest{ItemID: "forged9", RequestedBy: "mallory"}, nil, &err)
	})
	s.at(2*time.Minute, func() {
		s.ErrorContains(err, "vault vault1 holds no item forged9 with data to delete")
		s.Empty(s.status().Requests)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// A vault that cannot check the item a delete names (the server does not
// answer) does not refuse the delete: it answers that it cannot, changes
// nothing, and the item waits and asks again.
func (s *VaultSuite) TestADeleteWhoseItemCannotBeCheckedWaitsInsteadOfBeingRefused() {
	var answer protocol.VaultAnswer
	var err error
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.itemDelete("item-delete", protocol.ItemDeleteRequest{ItemID: "unreachable1", RequestedBy: "mallory"}, &answer, &err)
	})
	s.at(10*time.Minute, func() {
		s.Require().NoError(err, "a check that could not be made is no refusal")
		s.Contains(answer.Unavailable, "vault vault1 could not check that item unreachable1 runs (frontend did not answer): the item asks again")
		s.Empty(answer.Pending)
		st := s.status()
		s.Empty(st.Requests, "nothing was opened for approval")
		s.Equal([]string{"enableMua/alice/accepted"}, s.auditLines(), "nothing refused in the audit")
		for _, al := range s.alerts {
			s.NotEqual(protocol.AlertCriticalRejected, al.Kind)
		}
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// Alerts waiting for delivery cross continue-as-new with the vault: a burst
// of refused deletes while the webhook is down must not grow them with
// every refusal. Past the bound, alerts of a kind are folded into one,
// counted, and none is lost from the count.
func (s *VaultSuite) TestABurstOfRefusalsWhileTheWebhookIsDownKeepsTheAlertQueueBounded() {
	const forged = 300
	errs := make([]error, forged)
	s.at(time.Minute, func() {
		s.enableMua("24h")
		s.notifierDownUntil = s.env.Now().Add(3 * time.Minute)
		for i := range errs {
			s.itemDelete(fmt.Sprintf("forged-%d", i), protocol.ItemDeleteRequest{ItemID: fmt.Sprintf("forged%d", i), RequestedBy: "mallory"}, nil, &errs[i])
		}
	})
	s.at(2*time.Hour, func() {
		for _, err := range errs {
			s.ErrorContains(err, "holds no item forged")
		}
		refusals, delivered := 0, 0
		for _, al := range s.alerts {
			if al.Kind == protocol.AlertCriticalRejected {
				delivered++
				refusals += 1 + al.More
			}
		}
		s.Equal(forged, refusals, "every refusal is counted in an alert")
		s.LessOrEqual(delivered, 101, "at most a hundred alerts waited, and one of each kind beyond them")
		s.Greater(delivered, 1)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestAnItemDeleteCannotShortenItsOwnWindow: any client can send
// itemDelete, under the update ID the item's own ask will use; the
// worker's override and a short item window in it count for nothing.
func (s *VaultSuite) TestAnItemDeleteCannotShortenItsOwnWindow() {
	var answer protocol.VaultAnswer
	var err error
	s.at(time.Minute, func() {
		s.itemDelete("forged", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "mallory",
			Window: protocol.WindowInputs{ItemDays: 1, Override: protocol.RetentionOverride{Window: time.Nanosecond, Replace: true}}}, &answer, &err)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(err)
		s.Equal(14*day, answer.Window, "the vault's window, whatever the message says")
		s.False(answer.Disabled)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}
