package accounts

// EmailID is emailID, for the migration's test.
var EmailID = emailID
