// What a fan's tab remembers between pages and reloads: the waiting room's queue token, the
// admission token and the live hold, per event. sessionStorage: this tab only, gone when it
// closes, cleared at logout.

function read(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key));
  } catch {
    return null;
  }
}

function write(key, value) {
  if (value === null || value === undefined) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, JSON.stringify(value));
}

export const store = {
  queueToken: (eventId) => read(`queue:${eventId}`),
  setQueueToken: (eventId, token) => write(`queue:${eventId}`, token),
  admission: (eventId) => read(`admission:${eventId}`),
  setAdmission: (eventId, token) => write(`admission:${eventId}`, token),
  hold: (eventId) => read(`hold:${eventId}`),
  setHold: (eventId, hold) => write(`hold:${eventId}`, hold),
};
