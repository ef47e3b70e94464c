package vm

import "context"

// Names returns the names of the VMs godwit manages, from the store only
// (no libvirt call), for metrics and health checks.
func (s *Service) Names(ctx context.Context) (map[string]bool, error) {
	kvs, err := s.store.List(ctx, bucket)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = true
	}
	return out, nil
}
