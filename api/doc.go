// Package api holds godwit's wire types: the VM spec, resources, operations
// and errors that cross the REST API. It imports only the standard library,
// so clients can use it without pulling in the daemon.
package api
