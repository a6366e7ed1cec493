package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
)

func (s *ItemSuite) approvedAtVault(id, by string) {
	s.vaultRequests = append(s.vaultRequests, MuaRequest{
		RequestID: id, Operation: string(OpDelete), ItemID: "vm1", RequestedBy: by, Reason: "decommissioned",
		State: RequestApproved, DecidedBy: "bob",
	})
}

func (s *ItemSuite) lastAudit() string {
	a := s.status().Audit
	e := a[len(a)-1]
	return e.Operation + "/" + e.RequestedBy + "/" + e.Outcome
}

func (s *ItemSuite) TestDeleteUnderMuaWaitsForApprovalAndChangesNothing() {
	s.vaultMua = true
	var got Status
	var err error
	s.at(time.Hour, func() {
		s.update(UpdateDelete, Request{RequestedBy: "mallory", Reason: "decommissioned"}, &got, &err)
	})
	s.at(2*time.Hour, func() {
		s.Require().NoError(err)
		s.Require().NotNil(got.PendingApproval, "the answer names the request")
		s.Equal("r-1", got.PendingApproval.RequestID)
		s.Equal(RequestPending, got.PendingApproval.State)
		s.Equal(Protected, got.ProtectionState)
		s.Equal([]ItemDeleteRequest{{ItemID: "vm1", RequestedBy: "mallory", Reason: "decommissioned"}}, s.approvalRequests)
		s.Equal("delete/mallory/pending approval", s.lastAudit())
		// A signal goes the same way.
		s.env.SignalWorkflow(SignalDelete, Request{RequestedBy: "mallory"})
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Equal(Protected, st.ProtectionState)
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
	s.vaultMua = true
	var deleted time.Time
	s.at(time.Hour, func() {
		s.approvedAtVault("r-1", "mallory")
		deleted = s.env.Now()
		s.env.SignalWorkflow(SignalDeleteApproved, DeleteApproval{RequestID: "r-1"})
	})
	s.at(2*time.Hour, func() {
		st := s.status()
		s.Equal(SoftDeleted, st.ProtectionState)
		s.Equal(deleted.Add(14*day).UTC().Format(time.RFC3339), st.DeferredDeleteTimeInUTC)
		last := st.Audit[len(st.Audit)-1]
		s.Equal("delete/mallory/accepted", last.Operation+"/"+last.RequestedBy+"/"+last.Outcome, "the audit shows who asked")
		s.Contains(last.Detail, "reason: decommissioned; approved by bob (request r-1)")
		s.Empty(s.approvalRequests, "an approved delete asks for no new approval")
		s.mustUpdate(UpdateUndelete, Request{RequestedBy: "alice"})
	})
	s.at(3*time.Hour, func() {
		// The same approval again, as anyone could send it.
		s.env.SignalWorkflow(SignalDeleteApproved, DeleteApproval{RequestID: "r-1"})
	})
	s.at(4*time.Hour, func() {
		st := s.status()
		s.Equal(ProtectionStopped, st.ProtectionState, "an approval is used once")
		s.Equal("delete/anonymous/rejected", s.lastAudit())
		s.Contains(st.Audit[len(st.Audit)-1].Detail, "request r-1 has already been carried out")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
	s.Zero(s.purges)
}

// TestForgedApprovalsChangeNothing: the signal is believed only when the
// vault holds the approval, for this item.
func (s *ItemSuite) TestForgedApprovalsChangeNothing() {
	s.vaultMua = true
	s.vaultRequests = []MuaRequest{
		{RequestID: "r-1", Operation: string(OpDelete), ItemID: "vm1", RequestedBy: "mallory", State: RequestPending},
		{RequestID: "r-2", Operation: string(OpDelete), ItemID: "vm2", RequestedBy: "mallory", State: RequestApproved},
		{RequestID: "r-3", Operation: UpdateDeleteVault, RequestedBy: "mallory", State: RequestApproved},
	}
	cases := []struct{ payload any }{
		{DeleteApproval{RequestID: "r-1"}}, // not approved
		{DeleteApproval{RequestID: "r-2"}}, // another item's
		{DeleteApproval{RequestID: "r-3"}}, // not a delete
		{DeleteApproval{RequestID: "r-9"}}, // unknown
		{"text"},                           // malformed
	}
	s.at(time.Hour, func() {
		for _, c := range cases {
			s.env.SignalWorkflow(SignalDeleteApproved, c.payload)
		}
	})
	s.at(2*time.Hour, func() {
		st := s.status()
		s.Equal(Protected, st.ProtectionState)
		var details []string
		for _, e := range st.Audit {
			if e.Operation == string(OpDelete) {
				s.Equal(OutcomeRejected, e.Outcome)
				details = append(details, e.Detail)
			}
		}
		s.Require().Len(details, len(cases), "every forged approval is audited")
		s.Contains(details[0], "request r-1 at vault vault1 is PendingApproval, not Approved")
		s.Contains(details[1], "request r-2 at vault vault1 is not a delete of item vm1")
		s.Contains(details[2], "is not a delete of item vm1")
		s.Contains(details[3], "vault vault1 holds no request r-9")
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
	s.Zero(s.purges)
}

// TestAVaultThatCannotBeReadStillNeedsApproval: the item last saw
// multi-user authorization on, and does not guess it is now off.
func (s *ItemSuite) TestAVaultThatCannotBeReadStillNeedsApproval() {
	s.vaultMua = true
	var err error
	var got Status
	s.at(time.Hour, func() { s.vaultSettings = SoftDeleteSettings{} }) // the vault stops answering
	s.at(2*time.Hour, func() { s.update(UpdateDelete, Request{RequestedBy: "mallory"}, &got, &err) })
	s.at(3*time.Hour, func() {
		s.Require().NoError(err)
		s.NotNil(got.PendingApproval, "the delete still goes to the vault for approval")
		s.Equal(Protected, s.status().ProtectionState)
		s.end()
	})
	s.env.ExecuteWorkflow(BackupItem, s.input())
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the item ran to the last check")
}
