-- Shared by policy.lua and settle.lua (prepended to each): a question comes as one argument,
-- its words separated by spaces, as each argument costs the gateway more to write than its
-- text.
local function words(text)
    local q = {}
    for word in string.gmatch(text, '[^ ]+') do q[#q + 1] = word end
    return q
end

