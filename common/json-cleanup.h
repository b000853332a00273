/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "macro.h"

static inline void json_putp(json_object **j)
{
	json_object_put(*j);
}
#define _cleanup_json_ _cleanup_(json_putp)
