package fake

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

const nicA = `<interface type='bridge'><mac address='52:54:00:00:00:0a'/><source bridge='br0'/></interface>`

func TestInterfaceAttachDetach(t *testing.T) {
	ctx := context.Background()
	f := New()
	if _, err := f.Define(ctx, domXML("a", "")); err != nil {
		t.Fatal(err)
	}
	has := func(live bool) bool {
		x, err := f.XML(ctx, "a", !live)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(x, "52:54:00:00:00:0a")
	}

	// What both refuse before changing anything.
	for _, call := range []struct {
		what string
		err  error
		do   func() error
	}{
		{"attach to no domain", hypervisor.ErrNotFound, func() error { return f.AttachDevice(ctx, "nope", nicA, false) }},
		{"detach from no domain", hypervisor.ErrNotFound, func() error { return f.DetachDevice(ctx, "nope", nicA, false) }},
		{"attach live to a stopped domain", hypervisor.ErrInvalidState, func() error { return f.AttachDevice(ctx, "a", nicA, true) }},
		{"detach live from a stopped domain", hypervisor.ErrInvalidState, func() error { return f.DetachDevice(ctx, "a", nicA, true) }},
		{"attach an injected failure", ErrInjected, func() error {
			f.FailNext("AttachDevice", nil)
			return f.AttachDevice(ctx, "a", nicA, false)
		}},
		{"detach an injected failure", ErrInjected, func() error {
			f.FailNext("DetachDevice", nil)
			return f.DetachDevice(ctx, "a", nicA, false)
		}},
	} {
		if err := call.do(); !errors.Is(err, call.err) {
			t.Errorf("%s: %v, want %v", call.what, err, call.err)
		}
	}
	if err := f.AttachDevice(ctx, "a", "<interface type='bridge'><mac", false); err == nil || !strings.Contains(err.Error(), "XML error") {
		t.Errorf("attach of broken XML: %v", err)
	}
	if has(false) {
		t.Fatal("a refused attach changed the definition")
	}

	if err := f.AttachDevice(ctx, "a", nicA, false); err != nil || !has(false) {
		t.Fatalf("attach to the definition: %v, in it %t", err, has(false))
	}
	if err := f.AttachDevice(ctx, "a", nicA, false); err == nil || !strings.Contains(err.Error(), "already has an interface") {
		t.Errorf("attach of a MAC the domain has: %v", err)
	}
	if err := f.DetachDevice(ctx, "a", nicA, false); err != nil || has(false) {
		t.Fatalf("detach from the definition: %v, still in it %t", err, has(false))
	}
	if err := f.DetachDevice(ctx, "a", nicA, false); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("detach of a MAC the domain lacks: %v, want ErrNotFound", err)
	}

	if err := f.Start(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := f.AttachDevice(ctx, "a", nicA, true); err != nil || !has(true) || !has(false) {
		t.Fatalf("live attach: %v, live %t, defined %t", err, has(true), has(false))
	}
	if err := f.DetachDevice(ctx, "a", nicA, true); err != nil || has(true) || has(false) {
		t.Fatalf("live detach: %v, live %t, defined %t", err, has(true), has(false))
	}
}
