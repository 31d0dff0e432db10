/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * For the KlJsonBody tests: every string node of a tree, to attach each one
 * from a buffer of its own.
 */
#pragma once

#include <json-glib/json-glib.h>

/* appends the string member values and array elements under @node to @out, depth first */
static inline void
kl_test_json_string_nodes(JsonNode *node, GPtrArray *out)
{
	if (JSON_NODE_HOLDS_OBJECT(node)) {
		JsonObjectIter iter;
		const gchar *name;
		JsonNode *member;

		json_object_iter_init(&iter, json_node_get_object(node));
		while (json_object_iter_next(&iter, &name, &member))
			kl_test_json_string_nodes(member, out);
	} else if (JSON_NODE_HOLDS_ARRAY(node)) {
		JsonArray *array = json_node_get_array(node);

		for (guint i = 0; i < json_array_get_length(array); i++)
			kl_test_json_string_nodes(json_array_get_element(array, i), out);
	} else if (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_STRING) {
		g_ptr_array_add(out, node);
	}
}
