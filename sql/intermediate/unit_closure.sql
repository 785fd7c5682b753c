-- Every (ancestor, descendant) pair of the tree, a unit being its own ancestor at depth 0.
-- Roll-ups sum a unit's descendants through this table, so children always sum to the parent.
with recursive closure as (
    select code as ancestor_code, code as descendant_code, 0 as depth
    from intermediate.units
    union all
    select c.ancestor_code, u.code, c.depth + 1
    from closure as c
    join intermediate.units as u on u.parent_code = c.descendant_code
)

select * from closure
