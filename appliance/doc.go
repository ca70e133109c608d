// Package appliance is Culvert's management plane: the operator's
// configuration (Spec, Default, Validate) and its translation into the
// dataplane's resolved tables (Builder), which keeps backend and service IDs
// stable across changes so that live flows keep their backend.
//
// Later pieces live here too: the YAML loader, health checks, VRRP, the
// console and the control API. The dataplane never imports this package.
package appliance
