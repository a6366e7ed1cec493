package signing

// System names the item and vault act under for what their clocks do.
const (
	Anonymous = "anonymous"
	System    = "system"
	Scheduler = "scheduler"
)
