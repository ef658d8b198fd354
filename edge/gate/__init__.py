"""The gate: visitor passes today; face entry and anti-tailgating follow (issue 4)."""
