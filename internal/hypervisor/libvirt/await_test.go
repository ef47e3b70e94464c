package libvirt

import (
	"context"
	"errors"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

func TestAwait(t *testing.T) {
	boom := errors.New("boom")
	v, answered, err := await(context.Background(), func() (int, error) { return 7, boom })
	if v != 7 || !answered || err != boom {
		t.Errorf("await of an answered call = %d, %t, %v; want 7, true, boom", v, answered, err)
	}

	// A call libvirt never answers is left behind when ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	release := make(chan struct{})
	defer close(release)
	v, answered, err = await(ctx, func() (int, error) {
		<-release
		return 7, nil
	})
	if v != 0 || answered || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("await of a hung call = %d, %t, %v; want 0, false, DeadlineExceeded", v, answered, err)
	}
}

func TestDeviceFlags(t *testing.T) {
	if got := deviceFlags(false); got != uint32(golibvirt.DomainDeviceModifyConfig) {
		t.Errorf("deviceFlags(false) = %d", got)
	}
	if got := deviceFlags(true); got != uint32(golibvirt.DomainDeviceModifyConfig|golibvirt.DomainDeviceModifyLive) {
		t.Errorf("deviceFlags(true) = %d", got)
	}
}
