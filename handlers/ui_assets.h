/* ui_assets: the dashboard's files, built into the binary from
 * handlers/ui/ by scripts/embed.sh (see the Makefile). */
#ifndef ROLLCALL_UI_ASSETS_H
#define ROLLCALL_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
	const char *name; /* the file's name, e.g. "app.js" */
	const unsigned char *data;
	size_t len;
};

/* Ends with an entry whose name is NULL. */
extern const struct ui_asset ui_assets[];

#endif
