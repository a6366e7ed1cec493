package item_test

import (
	"context"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"recoveryvault/workflows/protocol"
)

// ourRuns stands in for the server the activities ask who scheduled them:
// the test environment has none, and its workflows are ours, an item or a
// vault by their ID, running on our task queue.
type ourRuns struct{ client.Client }

func (ourRuns) DescribeWorkflowExecution(_ context.Context, id, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	typ := protocol.WorkflowType
	if strings.HasPrefix(id, "vault/") {
		typ = protocol.VaultWorkflowType
	}
	status := enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	if runID == "previous-run" {
		// The run a test continues from (SetContinuedExecutionRunID).
		status = enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{
		ExecutionConfig: &workflowpb.WorkflowExecutionConfig{TaskQueue: &taskqueuepb.TaskQueue{Name: protocol.TaskQueue}},
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
			Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: runID},
			Type:      &commonpb.WorkflowType{Name: typ}, Status: status,
		},
	}, nil
}
