//! Request paths and methods: with `auth` or `policy` on, nothing an MCP
//! server could take as an MCP request passes the filter unjudged.
