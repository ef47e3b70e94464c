package fake

import (
	"context"
	"strings"
)

// AttachDevice hot-plugs a disk or an interface, by the device XML's root.
func (f *Fake) AttachDevice(ctx context.Context, name, doc string, live bool) error {
	if strings.HasPrefix(strings.TrimSpace(doc), "<interface") {
		return f.attachInterface(ctx, name, doc, live)
	}
	return f.attachDisk(ctx, name, doc, live)
}

// DetachDevice unplugs a disk or an interface, by the device XML's root.
func (f *Fake) DetachDevice(ctx context.Context, name, doc string, live bool) error {
	if strings.HasPrefix(strings.TrimSpace(doc), "<interface") {
		return f.detachInterface(ctx, name, doc, live)
	}
	return f.detachDisk(ctx, name, doc, live)
}
