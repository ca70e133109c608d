// Package conntrack is the connection table of the load balancer.
package conntrack
