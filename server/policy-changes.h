/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "policy.h"

/* Appends to the array changes each change from a to b: {"what", "change", details...}. */
int policy_changes(const struct policy *a, const struct policy *b, json_object *changes);
/* One more change in the list (the caller's own kinds, such as signers); NULL on no memory. */
json_object *policy_change_new(json_object *changes, const char *what, const char *change);
/* o's key set to the string v (o may be NULL). */
void policy_change_str(json_object *o, const char *key, const char *v);
