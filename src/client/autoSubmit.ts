// A page whose form goes on by itself: an app's form_post answer, a sign-out with no session
// left to end, a device code that came in a link. Sesame's CSP allows no inline script, so
// the provider's own auto-submitting pages could not run here; a browser without scripts
// shows the form's button, and the person presses it.
document.querySelector<HTMLFormElement>('form[data-submits-itself]')?.requestSubmit();
