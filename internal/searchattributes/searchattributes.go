// Package searchattributes registers the custom search attributes the
// BackupItem workflow upserts. A server without them fails the workflow's
// tasks forever, so the worker makes sure of them before it polls.
package searchattributes

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
)

// The custom search attributes' names (docs/contract.md section 2), the
// one place they are spelled: the items set them, queries and listings
// read them.
const (
	VaultID  = "BackupVaultId"
	State    = "BackupItemState"
	Deadline = "DeferredDeleteTime"
	// Waiting is set while an item's delete waits for its vault: held by
	// its mass-delete guard, or not answered yet.
	Waiting = "BackupItemWaiting"
	// Anomaly is set while an item has a suspect point not yet cleared.
	Anomaly = "BackupItemAnomaly"
)

// Attributes are the custom search attributes and their types.
var Attributes = map[string]enumspb.IndexedValueType{
	VaultID:  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	State:    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	Deadline: enumspb.INDEXED_VALUE_TYPE_DATETIME,
	Waiting:  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	Anomaly:  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

// Ensure registers whichever attributes the namespace lacks; it is safe to
// call on every start. An attribute registered with another type is an
// error, since the workflow could never upsert it.
func Ensure(ctx context.Context, c client.Client, namespace string) error {
	ops := c.OperatorService()
	have, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range Attributes {
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
		case got != typ:
			return fmt.Errorf("search attribute %s is registered as %s in namespace %s, but Recovery Vault needs %s: remove it or use another namespace",
				name, got, namespace, typ)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		return fmt.Errorf("register search attributes in namespace %s: %w", namespace, err)
	}
	return nil
}

// CLIFlags is the Temporal CLI's way to register them by hand, for errors
// that tell an operator what to run.
func CLIFlags() string {
	return "temporal operator search-attribute create --name BackupVaultId --type Keyword --name BackupItemState --type Keyword --name DeferredDeleteTime --type Datetime --name BackupItemWaiting --type Keyword --name BackupItemAnomaly --type Keyword"
}
