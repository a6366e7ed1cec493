package item_test

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"

	"recoveryvault/internal/ransomware"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// TestAnEncryptedSourceIsCaughtAndItsOlderPointsOutliveTheirRetention runs
// the whole story in the workflow, with the real store: the older points
// outlive their retention, and a delete waits until clearAnomaly.
func (s *ItemSuite) TestAnEncryptedSourceIsCaughtAndItsOlderPointsOutliveTheirRetention() {
	in := s.input()
	in.Policy.RetentionDays = 2
	in.SourcePath = s.T().TempDir()
	ransomware.WriteDocuments(s.T(), in.SourcePath, 100, 8<<10)
	var kept []string
	s.at(2*day+time.Hour, func() {
		ransomware.Encrypt(s.T(), in.SourcePath, 60)
	})
	s.at(3*day+time.Hour, func() {
		st := s.status()
		a := protocol.Anomaly(st.RecoveryPoints)
		s.Require().NotNil(a, "the backup on day 3 saw the encryption")
		s.Contains(a.Suspect, `".locked"`)
		s.True(slices.ContainsFunc(s.alerts, func(al protocol.Alert) bool { return al.Kind == protocol.AlertAnomaly }))
		for _, rp := range st.RecoveryPoints {
			kept = append(kept, rp.ID)
		}
	})
	s.at(10*day, func() {
		st := s.status()
		for _, id := range kept {
			s.True(slices.ContainsFunc(st.RecoveryPoints, func(rp protocol.RecoveryPoint) bool { return rp.ID == id }), "point %s outlived its two days", id)
		}
		s.Subset(s.storedPoints(), kept)
		got := item.Status{}
		var err error
		s.update(protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"}, &got, &err)
		s.NoError(err)
	})
	s.at(11*day, func() {
		st := s.status()
		s.Equal(protocol.Protected, st.ProtectionState, "the delete waits")
		s.Require().NotNil(st.PendingDelete)
		s.Contains(st.PendingDelete.Why, "has an anomaly")
		s.mustUpdate(protocol.UpdateClearAnomaly, protocol.Request{RequestedBy: "alice", Reason: "incident closed: the encrypted files were restored"})
	})
	s.at(11*day+time.Hour, func() {
		st := s.status()
		s.Equal(protocol.SoftDeleted, st.ProtectionState, "once cleared, the delete went on")
		s.Nil(protocol.Anomaly(st.RecoveryPoints))
		s.Contains(st.Audit[len(st.Audit)-2].Detail, "anomaly cleared")
		s.end()
	})
	s.env.ExecuteWorkflow(item.BackupItem, in)
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}
