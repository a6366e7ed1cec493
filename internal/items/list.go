package items

import (
	"context"
	"fmt"
	"slices"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"golang.org/x/sync/errgroup"

	"recoveryvault/internal/searchattributes"
	"recoveryvault/workflows/protocol"
)

// List runs a visibility query over items (protocol.ItemsQuery), every
// page of it.
func List(ctx context.Context, c client.Client, query string) ([]protocol.ListedItem, error) {
	var rows []protocol.ListedItem
	var token []byte
	for {
		page, next, err := ListPage(ctx, c, query, 0, token)
		if err != nil {
			return nil, err
		}
		rows = append(rows, page...)
		if len(next) == 0 {
			return rows, nil
		}
		token = next
	}
}

// ListPage runs one page of a visibility query over items (pageSize 0 is
// the server's), and gives the token of the next page, empty on the last.
func ListPage(ctx context.Context, c client.Client, query string, pageSize int32, token []byte) ([]protocol.ListedItem, []byte, error) {
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: pageSize, NextPageToken: token})
	if err != nil {
		return nil, nil, fmt.Errorf("list items (%s): %w", query, err)
	}
	rows := make([]protocol.ListedItem, 0, len(resp.GetExecutions()))
	for _, e := range resp.GetExecutions() {
		rows = append(rows, Listed(e))
	}
	return rows, resp.GetNextPageToken(), nil
}

// Listed reads an item's identity, status and search attributes.
func Listed(e *workflowpb.WorkflowExecutionInfo) protocol.ListedItem {
	dc := converter.GetDefaultDataConverter()
	fields := e.GetSearchAttributes().GetIndexedFields()
	r := protocol.ListedItem{
		WorkflowID:     e.GetExecution().GetWorkflowId(),
		RunID:          e.GetExecution().GetRunId(),
		WorkflowStatus: e.GetStatus().String(),
		Running:        e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
	}
	if t := e.GetCloseTime(); t != nil {
		r.ClosedAt = t.AsTime()
	}
	_ = dc.FromPayload(fields[searchattributes.VaultID], &r.VaultID)
	_ = dc.FromPayload(fields[searchattributes.State], &r.ProtectionState)
	if p := fields[searchattributes.Deadline]; p != nil {
		_ = dc.FromPayload(p, &r.DeferredDeleteTime)
	}
	keyword := func(name string) (s string) {
		if p := fields[name]; p != nil {
			_ = dc.FromPayload(p, &s)
		}
		return s
	}
	r.DeleteWaiting = keyword(searchattributes.Waiting) == protocol.WaitingDelete
	r.Anomaly = keyword(searchattributes.Anomaly) == protocol.AnomalySuspect
	return r
}

// Waiting is the key under which Count counts the items whose delete
// waits for the vault (protocol.WaitingQuery), beside the states.
const Waiting protocol.State = "Waiting"

// Anomaly is the key under which Count counts the items with an anomaly.
const Anomaly protocol.State = "Anomaly"

// Keys are what Count counts and Query lists: the states users see, then
// Waiting and Anomaly.
var Keys = append(slices.Clone(protocol.VisibleStates), Waiting, Anomaly)

// Query is the visibility query of a vault's items in a state (every item
// that holds data for ""), or under Waiting and Anomaly of those whose
// delete waits for the vault and those with an anomaly.
func Query(vaultID string, key protocol.State) string {
	switch key {
	case Waiting:
		return protocol.WaitingQuery(vaultID)
	case Anomaly:
		return protocol.AnomalyQuery(vaultID)
	}
	return protocol.ItemsQuery(vaultID, key)
}

// Count counts a vault's items by state through visibility, with the
// queries that list them (protocol.ItemsQuery), so a count and its list
// agree, and under Waiting those whose delete waits for the vault. It asks
// the server once per count, all at once.
func Count(ctx context.Context, c client.Client, vaultID string) (map[protocol.State]int, error) {
	keys := Keys
	counts := make([]int, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	for i, key := range keys {
		g.Go(func() error {
			n, err := CountQuery(gctx, c, Query(vaultID, key))
			counts[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	m := make(map[protocol.State]int, len(keys))
	for i, k := range keys {
		m[k] = counts[i]
	}
	return m, nil
}

// HoldingData counts a vault's items that hold data: running and not
// purged, as ItemsQuery with no state lists them.
func HoldingData(ctx context.Context, c client.Client, vaultID string) (int, error) {
	return CountQuery(ctx, c, protocol.ItemsQuery(vaultID, ""))
}

// CountQuery counts the workflows a visibility query lists.
func CountQuery(ctx context.Context, c client.Client, query string) (int, error) {
	resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return 0, fmt.Errorf("count (%s): %w", query, err)
	}
	return int(resp.GetCount()), nil
}
