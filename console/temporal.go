package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/internal/items"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// defaultPageSize is how many items a page of a vault shows: the status of
// each is queried, so a page stays quick with thousands in the vault.
const defaultPageSize = 50

// maxVaults bounds the vaults page; each vault's status is queried.
const maxVaults = 500

// queryConcurrency bounds the status queries one page sends at once.
const queryConcurrency = 8

// vaultRow is one vault on the vaults page.
type vaultRow struct {
	ID     string
	Status vault.VaultStatus
	// Counts are its items by state, from visibility as on its own page.
	Counts map[protocol.State]int
	// Problem says why the vault's status could not be read.
	Problem string
	// AwaitingApproval counts the vault's requests waiting for approval.
	AwaitingApproval int
}

// listVaults reads the running vaults from visibility and each one's
// status from its workflow.
func (c *Console) listVaults(ctx context.Context) ([]vaultRow, bool, error) {
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", protocol.VaultWorkflowType)
	var rows []vaultRow
	var token []byte
	for {
		resp, err := c.opts.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token})
		if err != nil {
			return nil, false, unavailable(err)
		}
		for _, e := range resp.GetExecutions() {
			id, ok := strings.CutPrefix(e.GetExecution().GetWorkflowId(), protocol.VaultWorkflowID(""))
			if ok {
				rows = append(rows, vaultRow{ID: id})
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 || len(rows) >= maxVaults {
			break
		}
	}
	more := len(rows) > maxVaults || len(token) > 0
	rows = rows[:min(len(rows), maxVaults)]
	eachConcurrently(len(rows), func(i int) {
		st, err := c.vaultStatus(ctx, rows[i].ID)
		if err == nil {
			rows[i].Counts, err = c.countItems(ctx, rows[i].ID)
		}
		if err != nil {
			rows[i].Problem = err.Error()
		}
		rows[i].Status = st
		for _, req := range st.Requests {
			if req.State == protocol.RequestPending {
				rows[i].AwaitingApproval++
			}
		}
	})
	return rows, more, nil
}

func (c *Console) vaultStatus(ctx context.Context, vaultID string) (vault.VaultStatus, error) {
	var st vault.VaultStatus
	v, err := c.opts.Client.QueryWorkflow(ctx, protocol.VaultWorkflowID(vaultID), "", protocol.QueryVaultStatus)
	if err != nil {
		if notFound(err) {
			return st, problem(http.StatusNotFound, "There is no vault %s. A vault exists once an item of it is protected.", vaultID)
		}
		return st, unavailable(err)
	}
	return st, v.Get(&st)
}

// itemRow is one item on a vault's page: visibility's fields, and for a
// running item its status.
type itemRow struct {
	ItemID   string
	State    protocol.State
	Deadline time.Time
	Running  bool
	RunID    string
	// DeleteWaiting is a delete waiting for the vault; AwaitsApproval, one
	// waiting for an approver.
	DeleteWaiting, AwaitsApproval bool
	// Anomaly is a suspect point not yet cleared.
	Anomaly bool
	// Status is the item's answer to the status query, when it gave one.
	Status *item.Status
}

// itemPage is one page of a vault's items.
type itemPage struct {
	Rows []itemRow
	// Next is the token of the following page; empty on the last.
	Next []byte
}

// countItems counts a vault's items by state, through visibility: the
// same queries that list them, so a filter's count and its list agree.
func (c *Console) countItems(ctx context.Context, vaultID string) (map[protocol.State]int, error) {
	counts, err := items.Count(ctx, c.opts.Client, vaultID)
	if err != nil {
		return nil, unavailable(err)
	}
	return counts, nil
}

// waitingFilter lists the items whose delete waits for the vault.
const waitingFilter = items.Waiting

// anomalyFilter lists the items with a suspect point not yet cleared.
const anomalyFilter = items.Anomaly

// listItems reads one page of a vault's items from visibility and queries
// the status of each, for its last backup and recovery points.
func (c *Console) listItems(ctx context.Context, vaultID string, state protocol.State, token []byte) (itemPage, error) {
	q := items.Query(vaultID, state)
	var page itemPage
	listed, next, err := items.ListPage(ctx, c.opts.Client, q, int32(c.opts.PageSize), token)
	if err != nil {
		var invalid *serviceerror.InvalidArgument
		if errors.As(err, &invalid) && len(token) > 0 {
			return page, problem(http.StatusBadRequest, "This page of items is no longer valid: go back to the first page.")
		}
		return page, unavailable(err)
	}
	page.Next = next
	// One row per listed run, as the filter counts them: only Purged can
	// hold an ID twice, for an item purged, protected again and purged.
	for _, it := range listed {
		id, ok := strings.CutPrefix(it.WorkflowID, protocol.WorkflowID(vaultID, ""))
		if !ok {
			continue
		}
		page.Rows = append(page.Rows, itemRow{ItemID: id, RunID: it.RunID, State: protocol.State(it.ProtectionState), Deadline: it.DeferredDeleteTime,
			Running: it.Running, DeleteWaiting: it.DeleteWaiting, Anomaly: it.Anomaly})
	}
	// A purged item's final status is its workflow's result, read from the
	// listed run: the same ID may run again as a new item.
	eachConcurrently(len(page.Rows), func(i int) {
		row := &page.Rows[i]
		var st item.Status
		if !row.Running {
			if c.opts.Client.GetWorkflow(ctx, protocol.WorkflowID(vaultID, row.ItemID), row.RunID).Get(ctx, &st) == nil {
				row.Status = &st
			}
			return
		}
		// The current run: the listed one may have continued as new since.
		v, err := c.opts.Client.QueryWorkflow(ctx, protocol.WorkflowID(vaultID, row.ItemID), "", protocol.QueryStatus)
		if err == nil && v.Get(&st) == nil {
			row.Status = &st
			row.State = st.ProtectionState
			row.Deadline, _ = time.Parse(time.RFC3339, st.DeferredDeleteTimeInUTC)
		}
	})
	return page, nil
}

// itemStatus is an item's answer to the status query.
func (c *Console) itemStatus(ctx context.Context, vaultID, itemID string) (item.Status, error) {
	st, err := items.Status(ctx, c.opts.Client, vaultID, itemID)
	var none *items.NoItemError
	if errors.As(err, &none) {
		return st, problem(http.StatusNotFound, "%s.", upperFirst(none.Message))
	}
	if err != nil {
		return st, unavailable(err)
	}
	return st, nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// update runs an update and decodes its answer. A refusal comes back as
// the workflow's own sentence.
func (c *Console) update(ctx context.Context, workflowID, name string, arg, result any) error {
	err := items.Execute(ctx, c.opts.Client, client.UpdateWorkflowOptions{WorkflowID: workflowID, UpdateName: name, Args: []any{arg}}, result)
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &app) && app.Type() == protocol.ErrTypeRefused:
		return problem(http.StatusConflict, "%s", inConsoleWords(app))
	case errors.As(err, &app):
		return problem(http.StatusUnprocessableEntity, "%s failed: %s", name, app.Message())
	case items.Finished(err):
		return problem(http.StatusConflict, "This has finished: its workflow %s no longer takes operations.", workflowID)
	}
	return unavailable(err)
}

func notFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// unavailable reports that Temporal did not answer.
func unavailable(err error) error {
	return problem(http.StatusBadGateway, "Temporal did not answer (%v). Check that the server is up, then reload the page.", err)
}

// eachConcurrently runs f(0..n-1), a few at a time.
func eachConcurrently(n int, f func(int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, queryConcurrency)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// labelOf is the console's label of a field the API names.
var labelOf = map[string]string{
	"recoveryPointId": "Recovery point", "targetPath": "Restore to", "reason": "Reason", "requestedBy": "Your name",
}

// inConsoleWords says a refusal as the console's user knows the form: the
// field by its label, a name that is needed where they give it.
func inConsoleWords(app *temporal.ApplicationError) string {
	d := protocol.RefusalOf(app)
	label := labelOf[d.Field]
	switch msg, ok := strings.CutPrefix(app.Message(), d.Field); {
	case d.Code == protocol.CodeNameNeeded:
		return "Refused: give your name (Who are you?, at the top of the page), not anonymous, system or scheduler, so that someone else can approve; nothing was changed."
	case ok && label != "":
		return label + msg
	}
	return app.Message()
}
