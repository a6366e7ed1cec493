package item_test

import (
	"encoding/json"
	"time"

	"go.temporal.io/sdk/temporal"

	"recoveryvault/internal/signing"
	"recoveryvault/internal/signingtest"
	. "recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// approvedAtVault has bob approve request id at the vault, by the vault's
// own rules; approval is his signed approve on a vault that requires
// signatures. The test then sends the signal the vault would.
func (s *ItemSuite) approvedAtVault(id string, approval json.RawMessage) {
	d, err := vault.Decide(s.vault, vault.Command{Op: protocol.UpdateApprove, Payload: protocol.DecisionRequest{RequestID: id, RequestedBy: "bob"}, Input: approval},
		vault.Facts{Now: s.env.Now()})
	s.Require().NoError(err)
	s.Require().NotNil(d.Tell, "the vault tells the item")
	s.vault = d.State
}

// signedDelete is a delete signed with key k, as the starter sends it to a
// vault that requires signatures.
func (s *ItemSuite) signedDelete(k *signingtest.Key, reason string) json.RawMessage {
	b, err := signing.Sign(k.Signer, protocol.UpdateDelete, protocol.WorkflowID("vault1", "vm1"), protocol.Request{RequestedBy: k.Principal, Reason: reason}, s.env.Now())
	s.Require().NoError(err)
	return b
}

func (s *ItemSuite) lastAudit() string {
	a := s.status().Audit
	e := a[len(a)-1]
	return e.Operation + "/" + e.RequestedBy + "/" + e.Outcome
}

func (s *ItemSuite) TestDeleteUnderMuaWaitsForApprovalAndChangesNothing() {
	s.vault.Mua = muaOn
	var got Status
	var err error
	s.at(time.Hour, func() {
		s.update(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory", Reason: "decommissioned"}, &got, &err)
	})
	s.at(2*time.Hour, func() {
		s.Require().NoError(err)
		s.Require().NotNil(got.PendingApproval, "the answer names the request")
		s.Equal("r-1", got.PendingApproval.RequestID)
		s.Equal(protocol.RequestPending, got.PendingApproval.State)
		s.Equal(protocol.Protected, got.ProtectionState)
		s.Require().Len(s.approvalRequests, 1)
		r := s.approvalRequests[0]
		s.Equal("vm1/mallory/decommissioned", r.ItemID+"/"+r.RequestedBy+"/"+r.Reason)
		s.Equal("delete/mallory/pending approval", s.lastAudit())
		// A signal goes the same way.
		s.env.SignalWorkflow(protocol.SignalDelete, protocol.Request{RequestedBy: "mallory"})
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState)
		s.False(st.IsScheduledForDeferredDelete)
		s.Len(s.approvalRequests, 2)
		s.Len(s.storedPoints(), 1)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
	s.Zero(s.purges)
}

func (s *ItemSuite) TestApprovedDeleteIsCheckedAtTheVaultAndCarriedOutOnce() {
	s.vault.Mua = muaOn
	var deleted time.Time
	s.at(time.Hour, func() {
		s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory", Reason: "decommissioned"})
	})
	s.at(2*time.Hour, func() {
		s.approvedAtVault("r-1", nil)
		deleted = s.env.Now()
		s.env.SignalWorkflow(protocol.SignalDeleteApproved, protocol.DeleteApproval{RequestID: "r-1"})
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState)
		s.Equal(deleted.Add(14*day).UTC().Format(time.RFC3339), st.DeferredDeleteTimeInUTC)
		last := st.Audit[len(st.Audit)-1]
		s.Equal("delete/mallory/accepted", last.Operation+"/"+last.RequestedBy+"/"+last.Outcome, "the audit shows who asked")
		s.Contains(last.Detail, "reason: decommissioned; approved by bob (request r-1)")
		s.Len(s.approvalRequests, 1, "an approved delete asks for no new approval")
		s.mustUpdate(protocol.UpdateUndelete, protocol.Request{RequestedBy: "alice"})
	})
	s.at(4*time.Hour, func() {
		// The same approval again, as anyone could send it.
		s.env.SignalWorkflow(protocol.SignalDeleteApproved, protocol.DeleteApproval{RequestID: "r-1"})
	})
	s.at(5*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.ProtectionStopped, st.ProtectionState, "an approval is used once")
		s.Equal("deleteApproved/anonymous/rejected", s.lastAudit())
		s.Contains(st.Audit[len(st.Audit)-1].Detail, `item vm1 awaits no approval of request "r-1"`)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
	s.Zero(s.purges)
}

// TestForgedApprovalsChangeNothing: the signal is believed only for a
// delete this item registered, when the vault holds its approval.
func (s *ItemSuite) TestForgedApprovalsChangeNothing() {
	s.vault.Mua = muaOn
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"}) }) // registers r-1
	s.at(2*time.Hour, func() {
		s.vault.Requests = []protocol.MuaRequest{
			{RequestID: "r-1", Operation: string(protocol.OpDelete), ItemID: "vm1", RequestedBy: "mallory", State: protocol.RequestPending},
			// Approved, but for an earlier item under the same ID.
			{RequestID: "r-0", Operation: string(protocol.OpDelete), ItemID: "vm1", RequestedBy: "mallory", State: protocol.RequestApproved},
		}
		for _, payload := range []any{
			protocol.DeleteApproval{RequestID: "r-1"}, // registered, not approved
			protocol.DeleteApproval{RequestID: "r-0"}, // approved, not registered here
			protocol.DeleteApproval{RequestID: "r-9"}, // unknown
			protocol.DeleteApproval{},                 // no ID
			"text",                                    // malformed
		} {
			s.env.SignalWorkflow(protocol.SignalDeleteApproved, payload)
		}
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState)
		var details []string
		for _, e := range st.Audit {
			if e.Operation == protocol.SignalDeleteApproved {
				s.Equal(protocol.OutcomeRejected, e.Outcome)
				details = append(details, e.Detail)
			}
		}
		s.Require().Len(details, 5, "every forged approval is audited")
		s.Contains(details[0], "request r-1 at vault vault1 is PendingApproval, not Approved: nothing changed")
		s.Contains(details[1], `item vm1 awaits no approval of request "r-0"`)
		s.Contains(details[2], `awaits no approval of request "r-9"`)
		s.Contains(details[3], "no requestId")
		s.Contains(details[4], "malformed signal")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
	s.Zero(s.purges)
}

func (s *ItemSuite) TestAnonymousDeleteUnderMuaIsRefused() {
	s.vault.Mua = muaOn
	var err error
	var got Status
	s.at(time.Hour, func() { s.update(protocol.UpdateDelete, nil, &got, &err) })
	s.at(2*time.Hour, func() {
		s.ErrorContains(err, "name yourself in requestedBy, so that someone else can approve")
		s.Empty(s.approvalRequests)
		s.Equal(protocol.Protected, s.status().ProtectionState)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
}

// TestForgedApprovalsCannotHoldBackAnUndelete: approvals sent to a
// soft-deleted item are refused without asking the vault, so an undelete
// sent with them before the deadline still wins.
func (s *ItemSuite) TestForgedApprovalsCannotHoldBackAnUndelete() {
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"}) })
	s.at(time.Hour+14*day-time.Second, func() {
		s.vault.Requests = []protocol.MuaRequest{{RequestID: "r-1", Operation: string(protocol.OpDelete), ItemID: "vm1", State: protocol.RequestApproved}}
		for range 20 {
			s.env.SignalWorkflow(protocol.SignalDeleteApproved, protocol.DeleteApproval{RequestID: "r-1"})
		}
		s.env.SignalWorkflow(protocol.SignalUndelete, protocol.Request{RequestedBy: "alice"})
	})
	s.at(time.Hour+15*day, func() {
		s.Equal(protocol.ProtectionStopped, s.status().ProtectionState)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
	s.Zero(s.purges)
}

// TestAnApprovalWhoseWindowEndedIsNotCarriedOut: an approval is for its
// time; one that could not be carried out then must be asked again.
func (s *ItemSuite) TestAnApprovalWhoseWindowEndedIsNotCarriedOut() {
	s.vault.Mua = muaOn
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"}) })
	s.at(2*time.Hour, func() {
		s.vault.Requests = []protocol.MuaRequest{{RequestID: "r-1", Operation: string(protocol.OpDelete), ItemID: "vm1", RequestedBy: "mallory",
			State: protocol.RequestApproved, DecidedBy: "bob", ExpiresAt: s.env.Now().Add(-time.Minute)}}
		s.env.SignalWorkflow(protocol.SignalDeleteApproved, protocol.DeleteApproval{RequestID: "r-1"})
	})
	s.at(3*time.Hour, func() {
		s.Equal(protocol.Protected, s.status().ProtectionState)
		s.Contains(s.status().Audit[len(s.status().Audit)-1].Detail, "request r-1 was approved but its window ended")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
}

// TestASignedApprovalIsCheckedByTheItemAndCountsOnce: on a vault that
// requires signatures, the item checks the approver's signature itself
// against the keys its vault handed it with the pending delete: forged
// approvals, sent with full access to the namespace, are refused without
// asking the vault; bob's own is confirmed with the vault and soft-deletes
// the item once.
func (s *ItemSuite) TestASignedApprovalIsCheckedByTheItemAndCountsOnce() {
	bob, mallory := signingtest.New(s.T(), "bob"), signingtest.New(s.T(), "mallory")
	s.vault.Mua, s.vault.AllowedSigners = muaOn, signingtest.AllowedSigners(bob, mallory)
	approval := func(k *signingtest.Key, by, id string) protocol.DeleteApproval {
		b, err := signing.Sign(k.Signer, protocol.UpdateApprove, protocol.VaultWorkflowID("vault1"), protocol.DecisionRequest{RequestID: id, RequestedBy: by}, s.env.Now())
		s.Require().NoError(err)
		return protocol.DeleteApproval{RequestID: "r-1", Approval: b}
	}
	var deleted time.Time
	var bobs protocol.DeleteApproval
	s.at(time.Hour, func() {
		s.mustUpdate(protocol.UpdateDelete, s.signedDelete(mallory, "decommissioned"))
	})
	s.at(2*time.Hour, func() {
		s.approvedAtVault("r-1", approval(bob, "bob", "r-1").Approval)
		for _, forged := range []protocol.DeleteApproval{
			{RequestID: "r-1"},                  // no signature: what anyone can send
			approval(mallory, "bob", "r-1"),     // mallory's key claiming to be bob
			approval(mallory, "mallory", "r-1"), // the requester approving
			approval(bob, "bob", "r-2"),         // bob's approval of another request
		} {
			s.env.SignalWorkflow(protocol.SignalDeleteApproved, forged)
		}
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState, "no forged approval counts")
		var details []string
		for _, e := range st.Audit {
			if e.Operation == protocol.SignalDeleteApproved && e.Outcome == protocol.OutcomeRejected {
				details = append(details, e.Detail)
			}
		}
		s.Require().Len(details, 4, "every forged approval is audited")
		s.Contains(details[0], "cannot be read")
		s.Contains(details[1], "do not list for bob")
		s.Contains(details[2], "mallory requested r-1 and cannot approve it")
		s.Contains(details[3], `the approval is of request "r-2"`)
		s.Zero(s.confirmations, "forged approvals are refused without asking the vault")
		deleted, bobs = s.env.Now(), approval(bob, "bob", "r-1")
		s.env.SignalWorkflow(protocol.SignalDeleteApproved, bobs)
	})
	s.at(4*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState)
		s.Equal(deleted.Add(14*day).UTC().Format(time.RFC3339), st.DeferredDeleteTimeInUTC)
		s.Equal(1, s.confirmations, "the vault confirmed bob's approval")
		last := st.Audit[len(st.Audit)-1]
		s.Equal("delete/mallory/accepted", last.Operation+"/"+last.RequestedBy+"/"+last.Outcome)
		s.Contains(last.Detail, "reason: decommissioned; approved by bob ("+bob.Fingerprint()+") (request r-1)", "the approver as the key that signed")
		s.mustUpdate(protocol.UpdateUndelete, protocol.Request{RequestedBy: "alice"})
		s.env.SignalWorkflow(protocol.SignalDeleteApproved, bobs)
	})
	s.at(5*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.ProtectionStopped, st.ProtectionState, "the same approval counts once")
		s.Equal("deleteApproved/anonymous/rejected", s.lastAudit())
		s.Contains(st.Audit[len(st.Audit)-1].Detail, `awaits no approval of request "r-1"`)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
	s.Zero(s.purges)
}

// TestASignedApprovalTheVaultRefusedChangesNothing: bob's approval, with a
// good signature, of a request the vault rejected first (its payload is in
// the vault's history for anyone to copy) is refused by the vault's
// confirmation: only the vault knows what happened to the request since.
func (s *ItemSuite) TestASignedApprovalTheVaultRefusedChangesNothing() {
	bob, mallory := signingtest.New(s.T(), "bob"), signingtest.New(s.T(), "mallory")
	s.vault.Mua, s.vault.AllowedSigners = muaOn, signingtest.AllowedSigners(bob, mallory)
	s.at(time.Hour, func() { s.mustUpdate(protocol.UpdateDelete, s.signedDelete(mallory, "")) })
	s.at(2*time.Hour, func() {
		s.vault.Requests = []protocol.MuaRequest{{RequestID: "r-1", Operation: string(protocol.OpDelete), ItemID: "vm1", RequestedBy: "mallory",
			State: protocol.RequestRejected, DecidedBy: "carol", ExpiresAt: s.env.Now().Add(day)}}
		b, err := signing.Sign(bob.Signer, protocol.UpdateApprove, protocol.VaultWorkflowID("vault1"), protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}, s.env.Now())
		s.Require().NoError(err)
		s.env.SignalWorkflow(protocol.SignalDeleteApproved, protocol.DeleteApproval{RequestID: "r-1", Approval: b})
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState)
		s.Equal(1, s.confirmations)
		s.Contains(st.Audit[len(st.Audit)-1].Detail, "request r-1 at vault vault1 is Rejected, not Approved")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
	s.Zero(s.purges)
}

// TestAnApprovalTheVaultCannotConfirmWaitsAndIsCarriedOutLater: the vault
// is down when the approval arrives; the item keeps it, shows it, and
// carries out the delete when the vault is back, without a new approval.
func (s *ItemSuite) TestAnApprovalTheVaultCannotConfirmWaitsAndIsCarriedOutLater() {
	s.vault.Mua = muaOn
	settings := s.vaultSettings
	s.at(time.Hour, func() {
		s.mustUpdate(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory", Reason: "decommissioned"})
	})
	s.at(2*time.Hour, func() {
		s.approvedAtVault("r-1", nil)
		s.vaultSettings.State = "" // the vault does not answer
		s.env.SignalWorkflow(protocol.SignalDeleteApproved, protocol.DeleteApproval{RequestID: "r-1"})
	})
	s.at(2*time.Hour+30*time.Minute, func() {
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState, "nothing deleted while the vault cannot confirm")
		s.Require().NotNil(st.ConfirmingApproval, "the waiting approval is shown")
		s.Equal("r-1", st.ConfirmingApproval.RequestID)
		s.Greater(st.ConfirmingApproval.Attempts, 1, "asked again")
		s.Contains(st.ConfirmingApproval.Why, "could not be asked")
		s.Equal("deleteApproved/anonymous/waiting for the vault", s.lastAudit())
		s.vaultSettings = settings // the vault is back
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState, "carried out once the vault confirmed, without a second approval")
		s.Nil(st.ConfirmingApproval)
		s.Equal(1, s.confirmations, "confirmed once at the vault, when it was back")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
}
