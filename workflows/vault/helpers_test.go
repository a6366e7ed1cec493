package vault_test

import (
	"context"
	"time"
)

const day = 24 * time.Hour

type ctxT = context.Context
