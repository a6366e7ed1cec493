package item

// What the black-box tests of package item_test need to see.

const MaxHistoryLength = maxHistoryLength

var CheckApproval = checkApproval
