-- Gotalk dissector for Wireshark and tshark (ships with gotalk_lab; `gotalk-lab wireshark --install`).
--
-- Protocol version 1 as the Go reference peer speaks it: each side writes the 2-hex-digit
-- version "01", then messages whose headers are ASCII (type byte, 4-byte request ID, hex
-- sizes) followed by their payload. One tree item per message; several messages in one
-- TCP segment and a message split over segments are handled by TCP desegmentation.
-- Found by Decode As (-d tcp.port==N,gotalk) or heuristically: a connection whose
-- first bytes are the 2-digit version followed by a message type.

local gotalk = Proto("gotalk", "Gotalk")

local TYPE_NAMES = {
    r = "SingleRequest", s = "StreamRequest", p = "StreamRequestPart",
    R = "SingleResult", S = "StreamResult", E = "ErrorResult", e = "RetryResult",
    n = "Notification", h = "Heartbeat", f = "ProtocolError",
}
local CODE_NAMES = { [0] = "abnormal", [1] = "unsupported protocol", [2] = "invalid message", [3] = "timeout" }

local f_version = ProtoField.uint8("gotalk.version", "Version", base.DEC)
local f_type = ProtoField.string("gotalk.type", "Type")
local f_id = ProtoField.bytes("gotalk.id", "Request ID")
local f_op = ProtoField.string("gotalk.op", "Operation or name")
local f_size = ProtoField.uint32("gotalk.size", "Payload size", base.DEC)
local f_payload = ProtoField.bytes("gotalk.payload", "Payload")
local f_wait = ProtoField.uint32("gotalk.wait", "Wait (ms)", base.DEC)
local f_load = ProtoField.uint16("gotalk.load", "Load", base.HEX)
local f_time = ProtoField.absolute_time("gotalk.time", "Time", base.UTC)
local f_code = ProtoField.uint32("gotalk.code", "Protocol error code", base.DEC, CODE_NAMES)
gotalk.fields = { f_version, f_type, f_id, f_op, f_size, f_payload, f_wait, f_load, f_time, f_code }

local e_malformed = ProtoExpert.new("gotalk.malformed", "Not a valid Gotalk header", expert.group.MALFORMED, expert.severity.ERROR)
gotalk.experts = { e_malformed }

local HEX = "^[0-9a-fA-F]+$"

-- The hex field of `size` bytes at `offset`, as a number; nil if it is not hex.
local function hex_at(tvb, offset, size)
    local text = tvb:raw(offset, size)
    if not text:match(HEX) then return nil end
    return tonumber(text, 16)
end

-- The layout of the message at `offset`: header size, payload size, or nil when the
-- header is incomplete (needs more bytes), or false when it is not Gotalk.
local function measure(tvb, offset)
    local available = tvb:len() - offset
    local kind = tvb:raw(offset, 1)
    local function need(size) return available >= size end
    if kind:match("%d") then -- the version: two digits (message types are letters)
        if not need(2) then return nil end
        if hex_at(tvb, offset, 2) == nil then return false end
        return 2, 0
    elseif kind == "r" or kind == "s" then
        if not need(8) then return nil end
        local name_size = hex_at(tvb, offset + 5, 3)
        if name_size == nil then return false end
        if not need(8 + name_size + 8) then return nil end
        local size = hex_at(tvb, offset + 8 + name_size, 8)
        if size == nil then return false end
        return 16 + name_size, size
    elseif kind == "p" or kind == "R" or kind == "S" or kind == "E" then
        if not need(13) then return nil end
        local size = hex_at(tvb, offset + 5, 8)
        if size == nil then return false end
        return 13, size
    elseif kind == "e" then
        if not need(21) then return nil end
        local size = hex_at(tvb, offset + 13, 8)
        if size == nil or hex_at(tvb, offset + 5, 8) == nil then return false end
        return 21, size
    elseif kind == "n" then
        if not need(4) then return nil end
        local name_size = hex_at(tvb, offset + 1, 3)
        if name_size == nil then return false end
        if not need(4 + name_size + 8) then return nil end
        local size = hex_at(tvb, offset + 4 + name_size, 8)
        if size == nil then return false end
        return 12 + name_size, size
    elseif kind == "h" then
        if not need(13) then return nil end
        if hex_at(tvb, offset + 1, 12) == nil then return false end
        return 13, 0
    elseif kind == "f" then
        if not need(9) then return nil end
        if hex_at(tvb, offset + 1, 8) == nil then return false end
        return 9, 0
    end
    return false
end

-- Adds one whole message's tree item; returns a one-line summary.
local function add_message(tvb, tree, offset, header_size, size)
    local item = tree:add(gotalk, tvb(offset, header_size + size))
    local kind = tvb:raw(offset, 1)
    if kind:match("%d") then
        local version = hex_at(tvb, offset, 2)
        item:add(f_version, tvb(offset, 2), version)
        item:set_text(string.format("Gotalk ProtocolVersion %d", version))
        return "version " .. version
    end
    item:add(f_type, tvb(offset, 1))
    local at = offset + 1
    local summary = TYPE_NAMES[kind]
    if kind ~= "n" and kind ~= "h" and kind ~= "f" then
        item:add(f_id, tvb(at, 4))
        summary = summary .. " id=" .. tvb:raw(at, 4):gsub("[^%w]", ".")
        at = at + 4
    end
    if kind == "r" or kind == "s" or kind == "n" then
        local name_size = hex_at(tvb, at, 3)
        local name = tvb(at + 3, name_size)
        item:add(f_op, name, name_size > 0 and name:string(ENC_UTF_8) or "")
        summary = summary .. " " .. (name_size > 0 and name:string(ENC_UTF_8) or "")
        at = at + 3 + name_size
    end
    if kind == "e" then
        item:add(f_wait, tvb(at, 8), hex_at(tvb, at, 8))
        at = at + 8
    end
    if kind == "h" then
        item:add(f_load, tvb(at, 4), hex_at(tvb, at, 4))
        item:add(f_time, tvb(at + 4, 8), NSTime.new(hex_at(tvb, at + 4, 8), 0))
        summary = summary .. " load=" .. tvb:raw(at, 4)
    elseif kind == "f" then
        local code = hex_at(tvb, at, 8)
        item:add(f_code, tvb(at, 8), code)
        summary = summary .. " code=" .. code
    else
        item:add(f_size, tvb(at, 8), size)
        at = at + 8
        if size > 0 then
            item:add(f_payload, tvb(at, size))
        else
            item:add(f_payload, tvb(at, 0))
        end
        summary = summary .. " " .. size .. " bytes"
    end
    item:set_text("Gotalk " .. summary)
    return summary
end

function gotalk.dissector(tvb, pinfo, tree)
    local length = tvb:len()
    local offset = 0
    local summaries = {}
    while offset < length do
        local header_size, size = measure(tvb, offset)
        if header_size == false then
            if offset == 0 and #summaries == 0 then
                local item = tree:add(gotalk, tvb(offset))
                item:add_proto_expert_info(e_malformed)
                return length
            end
            break
        elseif header_size == nil then -- the header goes on in the next segment
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        elseif offset + header_size + size > length then -- the payload does
            pinfo.desegment_offset = offset
            pinfo.desegment_len = offset + header_size + size - length
            break
        end
        summaries[#summaries + 1] = add_message(tvb, tree, offset, header_size, size)
        offset = offset + header_size + size
    end
    if #summaries > 0 then
        pinfo.cols.protocol = "Gotalk"
        pinfo.cols.info = table.concat(summaries, ", ")
    end
    return length
end

-- Decode As: -d tcp.port==N,gotalk
DissectorTable.get("tcp.port"):add_for_decode_as(gotalk)

-- A connection that starts with the 2-hex-digit version then (if more) a message type.
local function heuristic(tvb, pinfo, tree)
    if tvb:len() < 2 then return false end
    local start = tvb:raw(0, math.min(tvb:len(), 3))
    if not start:sub(1, 2):match("^%d%d$") then return false end
    if #start == 3 and not start:sub(3, 3):match("[rspRSEenhf]") then return false end
    pinfo.conversation = gotalk
    gotalk.dissector(tvb, pinfo, tree)
    return true
end
gotalk:register_heuristic("tcp", heuristic)
