-- Argo CD health check for actormesh.io/ActorMesh, from the kstatus conditions the operator writes
-- (docs/status.md). Installed through argocd-cm (argocd-cm-patch.yaml embeds this file verbatim).
local hs = {}
local generation = obj.metadata and obj.metadata.generation

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the ActorMesh operator to report status"
  return hs
end

local observed = obj.status.observedGeneration
if observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to process generation " .. tostring(generation)
  return hs
end

local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    -- A condition computed for an older generation says nothing about the current spec.
    local current = condition.observedGeneration == nil or generation == nil
      or condition.observedGeneration >= generation
    if current then
      conditions[condition.type] = condition
    end
  end
end

local function describe(condition)
  local text = condition.reason or ""
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local stalled, ready, reconciling = conditions["Stalled"], conditions["Ready"], conditions["Reconciling"]
local paused = conditions["Paused"]
if paused ~= nil and paused.status == "True" then
  -- actormesh.io/paused: hand work in progress, the operator writes nothing until it is removed.
  hs.status = "Suspended"
  hs.message = describe(paused)
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
elseif ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
end
-- A warning, not a health state: anonymous mode keeps the mesh Healthy but says so first.
local anonymous = conditions["AnonymousGateway"]
if anonymous ~= nil and anonymous.status == "True" then
  hs.message = "WARNING anonymous gateway (spec.gateway.anonymous: true); " .. hs.message
end
return hs
